import ArgumentParser
import Foundation
import Glibc
import GmemABI

/// The tour's script: the steps, in order, each explained, run and checked.
extension Tour {
    mutating func run() -> Bool {
        say(terminal.bold("gmemctl tour: private and shared guest memory in ten minutes"))
        explain("""

            A confidential VM (SEV-SNP, TDX, pKVM) gets its RAM from a guest_memfd: a file whose
            pages are each PRIVATE (only the guest may touch them; the host, that is the VMM and
            you, is refused) or SHARED (the host may read, write and mmap them, e.g. for I/O
            buffers). The guest asks for pages to switch; the VMM switches them with the
            KVM_SET_MEMORY_ATTRIBUTES2 ioctl, and the contents stay in place.

            gmemfs plays guest_memfd in userspace. Its files behave like the kernel's, and
            $MNT/.guest/NAME plays the guest: it sees every page, whatever its attributes.

            Every command below is run for real, exactly as shown, with
              MNT=\(mountpoint)\(ownMount ? "   (a gmemfs mounted just for this tour)" : "")
            and this gmemctl first on PATH. You can type them yourself in another terminal.
            """)
        waitForEnter()

        heading("create a guest_memfd file")
        explain("""
            Like KVM_CREATE_GUEST_MEMFD: a fixed size (64 KiB = 16 pages of 4 KiB) and flags.
            'mmap' lets the host map the file. Under the hood this is one extended attribute:
              setfattr -n \(GmemXattr.create) -v "\(name) 64K mmap" "$MNT"
            """)
        run("gmemctl create \"$MNT\" \(name) 64K --flags mmap", expect: .succeeds())
        run("ls -l \(file)", expect: .succeeds(printing: "65536"))
        showMap(expect: "0-10000 private\n")
        explain("Every page starts private: this memory belongs to the guest.")
        waitForEnter()

        heading("the host cannot read private memory")
        explain("Reading a private page fails with EACCES (Permission denied).")
        run("cat \(file)", expect: .fails(printing: "Permission denied"))
        showMap(expect: "0-10000 private\n")
        waitForEnter()

        heading("convert the first 16 KiB to shared")
        explain("""
            The VMM shares a range, e.g. for a virtio ring. gmemctl sets one xattr:
              setfattr -n \(GmemXattr.setAttributes) -v "0 16K shared" "$MNT/\(name)"
            Offsets and sizes must be multiples of 4096.
            """)
        run("gmemctl convert shared \(file) 0 16K", expect: .succeeds())
        showMap(expect: "0-4000 shared\n4000-10000 private\n")
        waitForEnter()

        heading("the host writes and reads shared memory")
        explain("Shared pages are ordinary file contents for the host: dd, cat, mmap all work.")
        run("printf 'hello from the host' | dd of=\(file) conv=notrunc status=none", expect: .succeeds())
        run("head -c 19 \(file); echo", expect: .succeeds(printing: "hello from the host"))
        showMap(expect: "0-4000 shared\n4000-10000 private\n")
        waitForEnter()

        heading("the guest writes a secret into a private page")
        explain("""
            Page 8 (offset 32K) is private. The guest writes there through its own view,
            which ignores attributes.
            """)
        run("printf 'the secret' | dd of=\(guestFile) bs=4096 seek=8 conv=notrunc status=none", expect: .succeeds())
        showMap(expect: "0-4000 shared\n4000-10000 private\n")
        waitForEnter()

        heading("the host can neither read nor map it")
        explain("""
            read() of the private page: EACCES. mmap() itself succeeds, but touching the page
            faults, and the kernel answers a fault on private memory with SIGBUS. gmemctl peek
            maps the file with MAP_SHARED and reads bytes, as a VMM would; it dies by SIGBUS.
            """)
        run("dd if=\(file) bs=4096 skip=8 count=1 status=none", expect: .fails(printing: "Permission denied"))
        run("gmemctl peek \(file) 32K --count 10", expect: .killedBy(SIGBUS))
        showMap(expect: "0-4000 shared\n4000-10000 private\n")
        waitForEnter()

        heading("convert the page to shared: the secret appears")
        explain("""
            This time with the kernel's own ioctl, KVM_SET_MEMORY_ATTRIBUTES2 (--ioctl).
            Conversion is in place: no copy, no zeroing, so what the guest wrote is now
            visible to the host, through read() and through a mapping.
            """)
        run("gmemctl convert shared --ioctl \(file) 32K 4K", expect: .succeeds())
        run("dd if=\(file) bs=1 skip=32K count=10 status=none; echo", expect: .succeeds(printing: "the secret"))
        run("gmemctl peek \(file) 32K --count 10", expect: .succeeds(printing: "the secret"))
        showMap(expect: "0-4000 shared\n4000-8000 private\n8000-9000 shared\n9000-10000 private\n")
        waitForEnter()

        heading("converting back to private revokes existing mappings")
        explain("""
            A process that mapped the page while it was shared keeps no access once it turns
            private: the conversion zaps every mapping, in every process. Here a peek holds a
            mapping (think: terminal 1), we convert (terminal 2), and its next read faults.
            """)
        revokeMapping()
        run("dd if=\(guestFile) bs=1 skip=32K count=10 status=none; echo", expect: .succeeds(printing: "the secret"))
        explain("The guest still has its data: conversions never touch contents.")
        showMap(expect: "0-4000 shared\n4000-10000 private\n")
        waitForEnter()

        heading("under the hood")
        explain("""
            gmemctl only uses what any program can: the user.gmem.* extended attributes and
            the ioctl. The map as text (hex byte offsets, end exclusive), then the counters:
            """)
        run("getfattr --absolute-names --only-values -n \(GmemXattr.attributes) \(file)", expect: .succeeds(printing: "0-4000 shared\n4000-10000 private"))
        run("gmemctl stats \(file)", expect: .succeeds(printing: "conversions"))
        explain("""

            Try next: gmemctl map --svg map.svg FILE, gmemctl watch FILE while you convert
            in another terminal, and docs/tutorial.md for what each step maps to in the kernel.
            """)

        waitForEnter()
        realGuest()

        if !ownMount {
            // Leave the user's mount as we found it.
            _ = try? shell.run("rm -f \(file) \(vmFile)")
        }
        say("")
        if failures.isEmpty {
            say(terminal.paint("✓ all \(stepNumber) steps behaved as the kernel's guest_memfd does.", "1;32"))
            if ownMount { say(terminal.dim("  (unmounting \(mountpoint))")) }
            return true
        }
        say(terminal.paint("✗ \(failures.count) check(s) behaved differently:", "1;31"))
        for f in failures { say("  - " + f) }
        return false
    }
}

import ArgumentParser
import CSeccomp
import Glibc
import GmemRun

/// `gmemctl run [--mount MOUNTPOINT] [-o OPTS] -- COMMAND [ARGS...]`: COMMAND and everything it
/// starts see a KVM with guest_memfd backed by gmemfs (docs/run.md).
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a program that uses the kernel's guest_memfd uAPI on gmemfs.",
        discussion: """
            COMMAND and every process and thread it starts run under a seccomp
            filter; gmemctl answers the calls it traps (seccomp user
            notification) and every other call runs untouched:
              KVM_CHECK_EXTENSION on /dev/kvm or a VM fd:
                KVM_CAP_GUEST_MEMFD (234) -> 1, KVM_CAP_GUEST_MEMFD_FLAGS
                (244) -> 3, the in-place conversion capability
                (--in-place-cap) -> 8; any other: the real KVM's answer
              KVM_CREATE_GUEST_MEMFD on a VM fd: validated as the kernel
                does, then a new anonymous gmemfs file, kvm-gmem.PID.N
              mmap(MAP_PRIVATE) of such a file: EINVAL (ENODEV without
                the mmap flag), as the kernel
              KVM_SET_USER_MEMORY_REGION2 with KVM_MEM_GUEST_MEMFD naming
                such a file (created with the mmap flag): validated as the
                kernel does, then bound by the real KVM over a mapping of
                the file's guest view that gmemctl makes in the calling
                process (ptrace; x86_64); the guest reaches private pages,
                the process's own mapping faults on them
            Conversions (KVM_SET_MEMORY_ATTRIBUTES2), GMEM_PIN_PAGES,
            mmap(MAP_SHARED), fallocate and the rest go to gmemfs itself.

            Without a /dev/kvm this user can open (or with --emulate-kvm),
            COMMAND's open of /dev/kvm gets a stand-in answering
            KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_CREATE_VM and
            KVM_CREATE_GUEST_MEMFD; any other KVM ioctl fails with ENOTTY
            and one line on stderr (vCPUs and memslots need a real KVM).

            Without --mount, a private gmemfs is mounted under
            /tmp/gmemctl-run.XXXXXX (--guest-view; --kernel-compat unless
            --no-kernel-compat; -o adds gmemfs options) and removed when
            COMMAND ends, on any path: its exit, a signal, or gmemctl itself
            being killed (a janitor process then removes COMMAND's process
            group, the mount and the directory). COMMAND finds the mount
            point in $GMEM_RUN_MOUNT.

            COMMAND runs in its own process group (given the terminal when
            gmemctl has it); SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to
            gmemctl are passed on to it. When COMMAND exits, what is left of
            its group is killed.

            Exit status: COMMAND's (128+N if signal N ended it, 127 if it was
            not found, 126 if it could not be run); 64 for bad input, 1 when
            nothing could be started.

            Examples:
              gmemctl run -- ./my-vmm-test
              gmemctl run --emulate-kvm -- ./guest_memfd_test
              gmemctl run --mount /mnt/gmem --in-place-cap 246 -- ./convert
            """)

    @Option(name: .customLong("mount"), help: ArgumentHelp("Use this running gmemfs mount instead of a private one.", valueName: "MOUNTPOINT"))
    var mount: String?

    @Flag(name: .customLong("kernel-compat"), inversion: .prefixedNo,
          help: "Start the private gmemfs with --kernel-compat (read/write EINVAL, ... as the kernel).")
    var kernelCompat = true

    @Option(name: .customShort("o"), help: ArgumentHelp("A gmemfs mount option for the private mount (as gmemfs -o); repeatable.", valueName: "OPTS"))
    var options: [String] = []

    @Flag(name: .customLong("emulate-kvm"), help: "Give COMMAND the stand-in /dev/kvm even when a real one exists.")
    var emulateKVM = false

    @Option(name: .customLong("in-place-cap"), help: ArgumentHelp("The KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES number (not final upstream: 246, 248, 249 and 250 were used).", valueName: "N"))
    var inPlaceCapability: UInt64 = KVMCapability.defaultInPlaceConversion

    @Argument(parsing: .postTerminator, help: "The command to run (after --).")
    var command: [String] = []

    /// The environment variable COMMAND finds the mount point in.
    static let mountVariable = "GMEM_RUN_MOUNT"

    func validate() throws {
        guard !command.isEmpty else { throw UsageFailure("run needs a COMMAND: gmemctl run [OPTIONS] -- COMMAND [ARGS...]") }
        guard mount == nil || options.isEmpty else { throw UsageFailure("-o applies to the private mount only, not to --mount") }
        guard ![KVMCapability.guestMemfd, KVMCapability.guestMemfdFlags].contains(inPlaceCapability) else {
            throw UsageFailure("--in-place-cap \(inPlaceCapability) is KVM_CAP_GUEST_MEMFD or KVM_CAP_GUEST_MEMFD_FLAGS")
        }
    }

    func run() throws {
        guard cseccomp_user_notif_available() != 0 else {
            throw Failure("this kernel has no seccomp user notification ('user_notif' is not in /proc/sys/kernel/seccomp/actions_avail)")
        }
        let existing = try mount.map { try GmemPath($0, .mountRoot).mountPoint }
        // No /dev/kvm, or one this user cannot open (COMMAND runs as the same user): the stand-in.
        let emulated = emulateKVM || access("/dev/kvm", R_OK | W_OK) != 0
        let janitor = try Janitor()
        var privateMount: RunMount?
        let status: Int32
        do {
            if existing == nil { privateMount = try RunMount(options: options, kernelCompat: kernelCompat, janitor: janitor) }
            let root = existing ?? privateMount!.mountpoint
            setenv(Self.mountVariable, root, 1)
            let supervisor = Supervisor(policy: RunPolicy(emulatedKVM: emulated, inPlaceCapability: inPlaceCapability), mountRoot: root)
            status = try supervisor.run(command, started: { janitor.processGroup($0) })
        } catch {
            privateMount?.remove()
            janitor.done()
            throw error
        }
        privateMount?.remove()
        janitor.done()
        if status != ExitStatus.success { throw ExitCode(status) }
    }
}

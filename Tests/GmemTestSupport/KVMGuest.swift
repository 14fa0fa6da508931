import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The example VM of `docs/examples/confidential_vm.c`, compiled once per test run, and whether
/// this machine's KVM can run a guest at all: its `--probe` runs a one-instruction HLT guest on
/// anonymous memory. Tests of real guests are enabled only where that probe halted, and show
/// the probe's reason otherwise: nothing here imitates a guest.
public enum KVMGuest {
    /// `docs/examples/confidential_vm.c`.
    public static let exampleSource = CProgram.packageRoot + "/docs/examples/confidential_vm.c"

    /// The compiled example, or why it could not be built.
    public static let example: Result<String, HarnessError> = {
        do {
            let dir = try makeTemporaryDirectory("gmem-vm")
            let binary = dir + "/confidential_vm"
            let cc = try run(["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o", binary, exampleSource], timeout: 120)
            guard cc.succeeded else { return .failure(HarnessError("cc \(exampleSource) failed: \(cc.stderr)")) }
            return .success(binary)
        } catch {
            return .failure(HarnessError("\(error)"))
        }
    }()

    /// `docs/examples/confidential_vm_gmem.c`: the same VM in guest_memfd mode (kernel uAPI only).
    public static let guestMemfdExampleSource = CProgram.packageRoot + "/docs/examples/confidential_vm_gmem.c"

    /// The compiled guest_memfd-mode example, or why it could not be built.
    public static let guestMemfdExample: Result<String, HarnessError> = {
        do {
            let dir = try makeTemporaryDirectory("gmem-vm-gmem")
            let binary = dir + "/confidential_vm_gmem"
            let cc = try run(["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o", binary, guestMemfdExampleSource], timeout: 120)
            guard cc.succeeded else { return .failure(HarnessError("cc \(guestMemfdExampleSource) failed: \(cc.stderr)")) }
            return .success(binary)
        } catch {
            return .failure(HarnessError("\(error)"))
        }
    }()

    /// nil where a guest ran and halted; otherwise why not (no /dev/kvm, KVM refused, ...).
    public static let unavailableReason: String? = {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else { return "no usable /dev/kvm" }
        switch example {
        case .failure(let e): return "the example VM did not build: \(e)"
        case .success(let binary):
            guard let r = try? run([binary, "--probe"], timeout: 60) else { return "the KVM probe did not run" }
            if r.succeeded { return nil }
            return "KVM cannot run a one-instruction guest here: \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
        }
    }()

    /// Whether this machine's KVM ran the probe guest to its HLT.
    public static var canRun: Bool { unavailableReason == nil }
}

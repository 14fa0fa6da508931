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
    public static let example = compiled(exampleSource)

    /// `docs/examples/confidential_vm_gmem.c`: the same VM in guest_memfd mode (kernel uAPI only).
    public static let guestMemfdExampleSource = CProgram.packageRoot + "/docs/examples/confidential_vm_gmem.c"
    /// The compiled guest_memfd-mode example, or why it could not be built.
    public static let guestMemfdExample = compiled(guestMemfdExampleSource)

    /// `source` compiled warning-free into a fresh directory, or why it could not be.
    static func compiled(_ source: String) -> Result<String, HarnessError> {
        do {
            let name = ((source as NSString).lastPathComponent as NSString).deletingPathExtension
            let binary = try makeTemporaryDirectory("gmem-vm") + "/" + name
            return .success(try CProgram.compile(path: source, to: binary, flags: ["-std=gnu11", "-Wall", "-Wextra", "-Werror"]))
        } catch let e as HarnessError {
            return .failure(e)
        } catch {
            return .failure(HarnessError("\(error)"))
        }
    }

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

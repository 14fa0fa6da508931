import Foundation
import Glibc

/// The running gmemctl and the gmemfs installed beside it (the tour and `run` start that one).
enum Executables {
    /// The directory of the running gmemctl (`/proc/self/exe`, else argv[0]).
    static var directory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    /// `gmemfs` beside gmemctl; a ``Failure`` naming where it looked, followed by `instead`
    /// (what the user can do without it), when it is not there.
    static func gmemfs(otherwise instead: String) throws -> String {
        let executable = directory + "/gmemfs"
        guard access(executable, X_OK) == 0 else {
            throw Failure("cannot find gmemfs beside gmemctl (looked for \(executable)); \(instead)")
        }
        return executable
    }
}

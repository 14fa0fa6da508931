import ArgumentParser
import Logging

/// gmemfs's `-o` words: every daemon option in mount(8) spelling, so that `mount -t fuse.gmemfs`,
/// an fstab line and mount.fuse3 (which run `gmemfs SOURCE MOUNTPOINT -o OPTS`) can say
/// everything the long options say. The full list is in docs/semantics.md ("Mount options").
///
/// Contract of ``resolve(_:source:)``:
/// - Every word is classified before anything is mounted: a gmemfs word sets the same value as
///   its long option (applied after the long options, so it wins); a FUSE word passes through to
///   libfuse; a generic mount(8) word that libfuse cannot take is dropped; anything else, and a
///   gmemfs word with a malformed value, is a `ValidationError` naming the word.
/// - `auto_unmount` is on unless `noauto_unmount` is given: a killed daemon leaves no dead mount.
/// - SOURCE, when given, becomes the mount's `fsname` (the first field of /proc/mounts), which
///   is what `mount -a` compares to know an fstab line is already mounted.
enum MountOptions {
    /// One gmemfs word: `name` or `name=VALUE`, and the long option it stands for.
    struct Word: Sendable {
        let name: String
        let value: String?            // the value's placeholder; nil for a plain word
        let long: String?             // the long option set, nil for a word with no long form
        let apply: @Sendable (inout GmemfsCommand, String) throws -> Void
    }

    /// gmemfs's own words, one row per daemon option.
    static let words: [Word] = [
        Word(name: "file", value: "NAME:SIZE[:FLAGS]", long: "--file") { c, v in
            // `,` separates -o words: FLAGS are joined with `+` here (file=vm:1G:mmap+init-shared).
            let spec = v.replacing("+", with: ",")
            c.files.append(try GmemfsCommand.parseFileSpec(spec))
        },
        Word(name: "guest_view", value: nil, long: "--guest-view") { c, _ in c.guestView = true },
        Word(name: "kernel_compat", value: nil, long: "--kernel-compat") { c, _ in c.kernelCompat = true },
        Word(name: "no_in_place", value: nil, long: "--no-in-place") { c, _ in c.noInPlace = true },
        Word(name: "max_memory", value: "SIZE", long: "--max-memory") { c, v in
            c.maxMemory = try GmemfsCommand.size(v)
        },
        Word(name: "read_ahead_kb", value: "KB", long: "--read-ahead-kb") { c, v in c.readAheadKB = try number(v, "read_ahead_kb") },
        Word(name: "threads", value: "N", long: "--threads") { c, v in c.threads = try number(v, "threads") },
        Word(name: "io_uring", value: nil, long: "--io-uring") { c, _ in c.ioUring = true },
        Word(name: "pid_file", value: "PATH", long: "--pid-file") { c, v in c.pidFile = v },
        Word(name: "log_file", value: "PATH", long: "--log-file") { c, v in c.logFile = v },
        Word(name: "log_level", value: "LEVEL", long: "--log-level") { c, v in
            guard let level = Logger.Level(rawValue: v.lowercased()) else {
                throw ValidationError("unknown level '\(v)' (trace, debug, info, notice, warning, error, critical)")
            }
            c.logLevel = level
        },
        Word(name: "exit_with_parent", value: nil, long: "--exit-with-parent") { c, _ in c.exitWithParent = true },
        Word(name: "foreground", value: nil, long: "--foreground") { c, _ in c.foreground = true },
        Word(name: "debug", value: nil, long: "--debug") { c, _ in c.debug = true },
        Word(name: "noauto_unmount", value: nil, long: nil) { _, _ in },
    ]

    /// Words libfuse takes (checked against libfuse 3.14): passed through unchanged.
    static let fuseWords: Set<String> = [
        "allow_other", "allow_root", "default_permissions", "auto_unmount",
        "rw", "ro", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
        "async", "sync", "dirsync", "atime", "noatime",
    ]
    /// `NAME=` words libfuse takes.
    static let fuseValueWords: Set<String> = ["fsname", "subtype"]

    /// Generic mount(8) words that mount(8) or mount.fuse3 may forward but libfuse refuses
    /// ("unknown option"): accepted and dropped, so an fstab line with them still mounts.
    static let ignoredWords: Set<String> = [
        "defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "nofail", "_netdev",
        "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime",
        "lazytime", "nolazytime", "silent", "loud", "mand", "nomand", "iversion", "noiversion",
        "nonempty",   // FUSE 2's permission to mount over a non-empty directory: always so in FUSE 3
    ]
    /// Prefixes of dropped words: userspace-only options (`x-systemd.automount`, `comment=...`).
    static let ignoredPrefixes = ["x-", "comment="]

    /// Classifies `command.mountOptions` (comma lists, as `-o` gives them), applies gmemfs's
    /// words to `command`, and returns the words for libfuse (auto_unmount and fsname included).
    static func resolve(_ command: inout GmemfsCommand, source: String?) throws -> [String] {
        var fuse: [String] = []
        var autoUnmount = true
        for word in command.mountOptions.flatMap({ $0.split(separator: ",").map(String.init) }) {
            let (name, value) = split(word)
            if let w = words.first(where: { $0.name == name }) {
                switch (w.value, value) {
                case (nil, nil): break
                case (nil, _?): throw ValidationError("-o \(word): '\(name)' takes no value")
                case (_?, nil), (_?, ""?): throw ValidationError("-o \(word): expected \(name)=\(w.value!)")
                case (_?, _?): break
                }
                do { try w.apply(&command, value ?? "") } catch let e as ValidationError {
                    throw ValidationError("-o \(word): \(e.message)")
                }
                if name == "noauto_unmount" { autoUnmount = false }
            } else if value == nil && fuseWords.contains(name) || value != nil && fuseValueWords.contains(name) {
                if name == "auto_unmount" { autoUnmount = true } else { fuse.append(word) }
            } else if ignoredWords.contains(word) || ignoredPrefixes.contains(where: word.hasPrefix) {
                continue
            } else {
                throw ValidationError("unknown mount option '\(word)' (see 'gmemfs --help' for the -o words)")
            }
        }
        var defaults: [String] = autoUnmount ? ["auto_unmount"] : []
        if let source, !fuse.contains(where: { $0.hasPrefix("fsname=") }) { defaults.append("fsname=\(source)") }
        return defaults + fuse
    }

    /// `name=value` → (name, value); a plain word → (word, nil).
    static func split(_ word: String) -> (String, String?) {
        guard let eq = word.firstIndex(of: "=") else { return (word, nil) }
        return (String(word[..<eq]), String(word[word.index(after: eq)...]))
    }

    /// A decimal count that fits `T`.
    static func number<T: FixedWidthInteger>(_ text: String, _ name: String) throws -> T {
        guard let n = T(text), n >= 0 else { throw ValidationError("'\(text)' is not a number for \(name)") }
        return n
    }

    /// What shell completion offers after `-o`: gmemfs's words (`name=` for a word with a value)
    /// and libfuse's.
    static var completions: [String] {
        words.map { $0.value == nil ? $0.name : $0.name + "=" } + fuseWords.sorted() + fuseValueWords.sorted().map { $0 + "=" }
    }

    /// The `-o` help: one line per gmemfs word.
    static var help: String {
        let own = words.map { w in
            (w.value.map { "\(w.name)=\($0)" } ?? w.name) + (w.long.map { " (\($0))" } ?? "")
        }
        return "Mount options, comma-separated. gmemfs's: " + own.joined(separator: ", ")
            + ". In file=, FLAGS are joined with '+'. auto_unmount is on unless noauto_unmount."
            + " libfuse's (allow_other, ro, fsname=NAME, ...) pass through; mount(8)'s generic ones are accepted."
    }
}

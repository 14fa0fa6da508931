import FuseKit
import Glibc
import GmemABI
import GmemCore
import SystemPackage

/// The ioctls of a gmem file (docs/xattr-interface.md, "The ioctl"): KVM_SET_MEMORY_ATTRIBUTES2
/// and gmemfs's page references; any other command is ENOTTY.
extension GmemFilesystem {
    public func ioctl(_ ctx: RequestContext, inode: InodeNumber, command: UInt32, input: UnsafeRawBufferPointer, outputSize: Int, file: FileInfo, reply: consuming Reply<IoctlReply>) {
        let n = node(inode)
        let name = Self.ioctlNames[command]
        do throws(GmemError) {
            guard let n, let f = n.fileNode, let name else { throw .unknownIoctl(command) }
            switch command {
            case GmemPageReference.pinNumber, GmemPageReference.unpinNumber:
                try reference(n, f, ctx, pin: command == GmemPageReference.pinNumber, input: input, handle: file.handle)
            case KVMMemoryAttributes2.ioctlNumber:
                do throws(ConversionRefusal) {
                    try convert(f, ctx, via: .ioctl) { () throws(GmemError) in
                        try GmemFileHandle(file.handle).access.checkConversion()
                        return try KVMMemoryAttributes2(bytes: input).request(fileSize: f.file.size)
                    }
                } catch {
                    // kvm_gmem_set_attributes: on a failure that names a page, error_offset is set,
                    // the whole struct copied back, and the call fails (Reply.failure does both).
                    // Such a failure comes after validation, so the struct was the request with
                    // zero flags and reserved words.
                    guard let offset = error.error.errorOffset, let r = error.request, outputSize >= KVMMemoryAttributes2.byteCount else {
                        refused("ioctl \(name)", on: n, ctx, error.error)
                        return reply.error(error.errno)
                    }
                    refused("ioctl \(name) [\(r.offset), +\(r.size))", on: n, ctx, error.error)
                    let back = KVMMemoryAttributes2(offset: r.offset, size: r.size, attributes: r.attributes.rawValue, errorOffset: offset)
                    return reply.failure(error.errno, output: back.encode())
                }
            default:
                throw .unknownIoctl(command)
            }
            // Success copies nothing back, as in the kernel (error_offset is only written on failure).
            reply.result(0, output: UnsafeRawBufferPointer(start: nil, count: 0))
        } catch {
            if let n, n.fileNode != nil, let name { refused("ioctl \(name)", on: n, ctx, error) }
            reply.error(error)
        }
    }

    /// The ioctls of a gmem file, by their uAPI names (for refusal log lines).
    static let ioctlNames: [UInt32: String] = [
        KVMMemoryAttributes2.ioctlNumber: KVMMemoryAttributes2.ioctlName,
        GmemPageReference.pinNumber: GmemPageReference.pinName,
        GmemPageReference.unpinNumber: GmemPageReference.unpinName,
    ]
}

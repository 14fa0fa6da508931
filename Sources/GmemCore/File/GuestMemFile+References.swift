import Synchronization

/// Page references (pins) and armed faults of a ``GuestMemFile``: the failures a valid
/// conversion can meet (docs/semantics.md, "Page references" and "Error injection").
///
/// Locking (docs/locking.md): `references` and `injector` are leaf mutexes. A conversion reads
/// them inside the attribute lock held exclusive, so its check and its store are one step for
/// every reader; a host-view pin holds the attribute lock shared while it checks that the pages are shared; unpin and
/// release take only the mutex (dropping a reference can only let a later conversion succeed).
extension GuestMemFile {
    /// Which failure, if any, a valid conversion that would change the map meets: an armed fault
    /// first, then (to private only) the first referenced page. Called with the attribute
    /// lock held exclusive, before anything changes. Counts the failure.
    func checkFailures(_ request: ConversionRequest) throws(GmemError) {
        if let fault = injector.withLock({ $0.fire(request) }) {
            injectedFailures.add(1, ordering: .relaxed)
            throw fault
        }
        guard request.attributes.isPrivate else { return }
        if let page = references.withLock({ $0.firstReferenced(in: request.pages) }) {
            referenceRefusals.add(1, ordering: .relaxed)
            throw .referenced(offset: page << pageShift)
        }
    }

    /// Takes one reference on each page of `pages` for `holder`. Through the host view every
    /// page must be shared (EFAULT at the first private one: get_user_pages cannot reach a
    /// private page); the guest view may pin any page. ENOMEM past
    /// ``PageReferences/maximumPerPage``. All or nothing.
    public func pin(_ pages: PageRange, holder: UInt64, view: View) throws(GmemError) {
        if view == .guest { return try references.withLock { (r: inout PageReferences) throws(GmemError) in try r.pin(pages, holder: holder) } }
        try withFirstPrivatePage(in: pages) { (p: UInt64?) throws(GmemError) in
            if let p { throw .badAddress(offset: p << pageShift) }
            try references.withLock { (r: inout PageReferences) throws(GmemError) in try r.pin(pages, holder: holder) }
        }
    }

    /// Drops one of `holder`'s references on each page of `pages`; ENOENT (nothing dropped) if
    /// it lacks one anywhere.
    public func unpin(_ pages: PageRange, holder: UInt64) throws(GmemError) {
        try references.withLock { (r: inout PageReferences) throws(GmemError) in try r.unpin(pages, holder: holder) }
    }

    /// Drops every reference of `holder` (its open file was released); returns how many went.
    @discardableResult
    public func releaseReferences(holder: UInt64) -> UInt64 {
        references.withLock { $0.release(holder: holder) }
    }

    /// Arms a fault or clears them all (`user.gmem.inject`); ENOSPC past
    /// ``FaultInjector/maximumArmed``.
    public func inject(_ command: InjectionCommand) throws(GmemError) {
        try injector.withLock { (i: inout FaultInjector) throws(GmemError) in try i.apply(command) }
    }

    /// The armed faults, in the order they are tried.
    public var armedFaults: [InjectedFault] { injector.withLock { $0.armed } }

    func addReferenceStats(_ s: inout Stats) {
        references.withLock { r in
            s.references = r.count
            s.referencedBytes = r.referencedPages << pageShift
        }
        s.referenceRefusals = referenceRefusals.load(ordering: .relaxed)
        s.injectedFailures = injectedFailures.load(ordering: .relaxed)
    }
}

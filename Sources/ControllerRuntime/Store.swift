import KubernetesClient
import Synchronization

/// The reflector's cache of one kind: what the server last said about each object.
///
/// Readers take a snapshot of one object; writers are the reflector only. A relist replaces the whole
/// content at once, so no reader ever sees half of an old list and half of a new one. An optional index
/// (e.g. "namespace/owner") lets a reconcile read its own objects without scanning the whole cache.
public final class Store<Object: KubernetesObject>: Sendable {
    public typealias IndexFunction = @Sendable (Object) -> String?

    /// Objects are boxed: a dictionary reserves room for more entries than it holds, and a bucket sized
    /// for a whole Deployment or workload struct (hundreds of bytes each) would be mostly empty space.
    fileprivate final class Box: Sendable {
        let object: Object
        init(_ object: Object) { self.object = object }
    }

    private struct State {
        var objects: [ObjectKey: Box] = [:]
        var index: [String: Set<ObjectKey>] = [:]
        var synced = false
    }
    private let state = Mutex(State())
    private let indexFunction: IndexFunction?
    private let transform: (@Sendable (Object) -> Object)?
    private let carry: (@Sendable (_ new: Object, _ old: Object) -> Object)?

    /// `transform` runs on every object before it is stored (as controller-runtime's cache transforms):
    /// keep in memory only what readers need. `carry` then sees the stored object it replaces, and may
    /// keep from it what a reader learned still holds (see `update(_:ifVersion:_:)`).
    public init(
        index: IndexFunction? = nil, transform: (@Sendable (Object) -> Object)? = nil,
        carry: (@Sendable (_ new: Object, _ old: Object) -> Object)? = nil
    ) {
        self.indexFunction = index
        self.transform = transform
        self.carry = carry
    }

    public func get(_ key: ObjectKey) -> Object? {
        state.withLock { $0.objects[key]?.object }
    }

    public func list() -> [Object] {
        state.withLock { $0.objects.values.map(\.object) }
    }

    /// Folds over the stored objects in place, under the store's lock, copying none of them out: for
    /// a figure over the whole cache (a gauge read at every scrape), where `list()` would copy every
    /// object (megabytes at 10 000) each time. `update` must be quick: the reflector waits for it.
    public func reduce<Result: Sendable>(into initial: Result, _ update: (inout Result, Object) -> Void) -> Result {
        state.withLock { state in
            var result = initial
            for box in state.objects.values { update(&result, box.object) }
            return result
        }
    }

    /// The objects whose index value is `value` (empty without an index function).
    public func indexed(_ value: String) -> [Object] {
        state.withLock { state in (state.index[value] ?? []).compactMap { state.objects[$0]?.object } }
    }

    public var count: Int { state.withLock { $0.objects.count } }

    /// True once the first list has been stored.
    public var hasSynced: Bool { state.withLock { $0.synced } }

    /// Replaces everything (after a list); returns the previous content for diffing and the objects as
    /// stored (transformed), so change handlers see what readers will.
    @discardableResult
    func replace(with objects: [Object]) -> (old: Contents, stored: [Object]) {
        let transformed = objects.map { transform?($0) ?? $0 }
        return state.withLock { state in
            let old = Contents(objects: state.objects)
            var stored: [Object] = []
            stored.reserveCapacity(transformed.count)
            var fresh: [ObjectKey: Box] = [:]
            fresh.reserveCapacity(transformed.count)
            var index: [String: Set<ObjectKey>] = [:]
            for object in transformed {
                let key = ObjectKey(object)
                let kept = carry.flatMap { carry in old[key].map { carry(object, $0) } } ?? object
                stored.append(kept)
                fresh[key] = Box(kept)
                if let value = indexFunction?(kept) { index[value, default: []].insert(key) }
            }
            state.objects = fresh
            state.index = index
            state.synced = true
            return (old, stored)
        }
    }

    /// Stores an object; returns the one it replaced and the object as stored (transformed).
    @discardableResult
    func upsert(_ object: Object) -> (old: Object?, stored: Object) {
        let transformed = transform?(object) ?? object
        let key = ObjectKey(transformed)
        return state.withLock { state in
            let old = state.objects[key]?.object
            let object = carry.flatMap { carry in old.map { carry(transformed, $0) } } ?? transformed
            let value = indexFunction?(object)
            state.objects[key] = Box(object)
            if let old, let oldValue = indexFunction?(old), oldValue != value { Self.unindex(key, oldValue, in: &state) }
            if let value { state.index[value, default: []].insert(key) }
            return (old, object)
        }
    }

    /// Replaces the stored object of `key` with `change(object)` if it is still at `resourceVersion`
    /// (a newer one from the watch is left alone). For a reader that learned it needs less of an
    /// object than the transform kept; `change` must keep the metadata (the index reads it).
    @discardableResult
    public func update(_ key: ObjectKey, ifVersion resourceVersion: String?, _ change: (Object) -> Object) -> Bool {
        state.withLock { state in
            guard let current = state.objects[key]?.object, current.metadata.resourceVersion == resourceVersion else { return false }
            state.objects[key] = Box(change(current))
            return true
        }
    }

    @discardableResult
    func remove(_ key: ObjectKey) -> Object? {
        state.withLock { state in
            let old = state.objects.removeValue(forKey: key)?.object
            if let old, let value = indexFunction?(old) { Self.unindex(key, value, in: &state) }
            return old
        }
    }

    /// What the store held before a relist, read without copying it.
    struct Contents: Sequence {
        fileprivate let objects: [ObjectKey: Box]
        subscript(key: ObjectKey) -> Object? { objects[key]?.object }
        func makeIterator() -> some IteratorProtocol<(key: ObjectKey, value: Object)> {
            objects.lazy.map { (key: $0.key, value: $0.value.object) }.makeIterator()
        }
    }

    private static func unindex(_ key: ObjectKey, _ value: String, in state: inout State) {
        state.index[value]?.remove(key)
        if state.index[value]?.isEmpty == true { state.index[value] = nil }
    }
}

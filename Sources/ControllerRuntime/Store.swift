import KubernetesClient
import Synchronization

/// The reflector's cache of one kind: what the server last said about each object.
///
/// Readers take a snapshot of one object; writers are the reflector only. A relist replaces the whole
/// content at once, so no reader ever sees half of an old list and half of a new one.
public final class Store<Object: KubernetesObject>: Sendable {
    private struct State {
        var objects: [ObjectKey: Object] = [:]
        var synced = false
    }
    private let state = Mutex(State())

    public init() {}

    public func get(_ key: ObjectKey) -> Object? {
        state.withLock { $0.objects[key] }
    }

    public func list() -> [Object] {
        state.withLock { Array($0.objects.values) }
    }

    public func keys() -> [ObjectKey] {
        state.withLock { Array($0.objects.keys) }
    }

    public var count: Int { state.withLock { $0.objects.count } }

    /// True once the first list has been stored.
    public var hasSynced: Bool { state.withLock { $0.synced } }

    /// Replaces everything (after a list); returns the previous content for diffing.
    @discardableResult
    func replace(with objects: [Object]) -> [ObjectKey: Object] {
        var fresh: [ObjectKey: Object] = [:]
        fresh.reserveCapacity(objects.count)
        for object in objects { fresh[ObjectKey(object)] = object }
        return state.withLock { state in
            let old = state.objects
            state.objects = fresh
            state.synced = true
            return old
        }
    }

    /// Stores an object; returns the one it replaced.
    @discardableResult
    func upsert(_ object: Object) -> Object? {
        let key = ObjectKey(object)
        return state.withLock { $0.objects.updateValue(object, forKey: key) }
    }

    @discardableResult
    func remove(_ key: ObjectKey) -> Object? {
        state.withLock { $0.objects.removeValue(forKey: key) }
    }
}

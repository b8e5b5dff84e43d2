import ControllerRuntime
import KubernetesClient
import Synchronization

/// What cwo remembers about one workload between reconciles. Everything here can be lost (a restart
/// loses it all): it only saves work and calls, and bridges the moment between a write and the cache
/// showing it. The truth is always what the API server and Key Vault hold.
struct WorkloadMemory {
    /// The workload these entries belong to: a workload deleted and created again under the same name
    /// starts with nothing remembered.
    var uid: String?
    /// The last desired state and what it was built from.
    var build: BuildMemo? {
        get { buildBox?.value }
        set { buildBox = newValue.map(Indirect.init) }
    }
    /// Our last write of each child (and of status), to recognise a cache that has not caught up yet. A
    /// child's is set as the request is sent and dropped by the child's next watch event, whenever it
    /// comes (the write's echo, or a deletion, perhaps before the answer); status's stays until the
    /// workload goes quiet (cwo alone writes its status fields).
    var written: [String: Written] = [:]
    /// Managed key release: what Key Vault was last brought to.
    var keyRelease: KeyReleaseMemo?
    /// Managed key release: consecutive failures, and the last one while cwo waits to try again.
    var keyReleaseFailures = 0
    var keyReleaseHold: KeyReleaseHold? {
        get { holdBox?.value }
        set { holdBox = newValue.map(Indirect.init) }
    }
    /// Finalizers cwo added (the cache may not show them yet).
    var finalizersAdded: Set<String> = []
    /// The images to resolve, for the spec they were read from (most reconciles see the same spec).
    var imageNeeds: ImageNeeds?
    /// Whether `build` or `imageNeeds` served a reconcile since the last sweep (`forgetQuietDesiredStates`).
    var buildUsed = false

    /// Held out of line: inline, the two optionals made every workload's memory 1 KB (a `DesiredState`
    /// is large), though most workloads have neither once settled.
    init(uid: String?) {
        self.uid = uid
    }

    /// Nothing left to remember: the workload needs no entry at all.
    var isEmpty: Bool {
        buildBox == nil && imageNeeds == nil && written.isEmpty && keyRelease == nil && keyReleaseFailures == 0 && holdBox == nil
            && finalizersAdded.isEmpty
    }

    private var buildBox: Indirect<BuildMemo>?
    private var holdBox: Indirect<KeyReleaseHold>?

    private final class Indirect<Value>: @unchecked Sendable {  // immutable; set by replacing the box
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    struct ImageNeeds {
        var spec: CompactJSON?
        var references: [String]
        var hostPulledLayers: Bool
    }

    /// The desired state and its inputs. Most reconciles (those cwo's own writes trigger) have the same
    /// inputs, and the policy need not be generated again.
    struct BuildMemo {
        var spec: CompactJSON?
        var context: BuildContext
        /// Without the Rego text and with an empty `deployment`: small enough to keep for every workload.
        var result: Result<DesiredState, SpecErrors>
        /// The Deployment as the cache keeps it (policy annotation as a digest), stamped with its intent
        /// digest, serialized. The full Deployment is built again to write it.
        var deployment: CompactJSON?
        /// The Deployment's intent digest as a cwo before digests were condensed computed it, once a
        /// Deployment stamped by one was met (`WorkloadReconciler.uncondensedIntent`).
        var uncondensedDigest: String?
        /// Keeps only the Deployment's metadata (with the intent digest): what deciding about a settled
        /// Deployment reads. A live Deployment that is not a settled summary is compared with a Deployment
        /// built again (`reconcileDeployment`).
        mutating func dropDeploymentSpec() {
            guard var value = deployment?.value, value["spec"] != nil else { return }
            value["spec"] = nil
            deployment = CompactJSON(value)
        }

        var state: Result<DesiredState, SpecErrors> {
            result.map { kept in
                var state = kept
                state.deployment = deployment?.value ?? [:]
                return state
            }
        }
    }

    /// A write cwo made: what it wrote (a child's intent, a status), as a hash (the values themselves would
    /// double the memory per workload). A hash collision could only delay a write until the cache shows
    /// the previous one.
    struct Written {
        var digest: Int

        init(_ value: some Hashable) {
            self.digest = value.hashValue
        }

        func matches(_ value: some Hashable) -> Bool {
            digest == value.hashValue
        }
    }

    struct KeyReleaseMemo {
        var keyID: String
        var allowed: [String]
        var published: [String]
        var keyVersion: String
        var at: ContinuousClock.Instant
    }

    /// The last Key Vault failure and when to try again. Reconciles before then report it without
    /// calling Key Vault.
    struct KeyReleaseHold {
        var until: ContinuousClock.Instant
        var generation: Int64
        /// The server asked for the wait (Retry-After): kept even across spec edits.
        var serverAsked: Bool
        var outcome: KeyReleaseOutcome
    }
}

/// Every workload's memory behind one lock.
final class WorkloadMemories: Sendable {
    /// Boxed: the dictionary keeps spare buckets, and each would otherwise be a whole (large) memory.
    private final class Box: @unchecked Sendable {  // only touched under `entries`' lock
        var memory: WorkloadMemory
        init(_ memory: WorkloadMemory) { self.memory = memory }
    }
    private let entries = Mutex<[ObjectKey: Box]>([:])
    /// Each workload's Deployment write: in flight (with the watch events of its Deployment that came
    /// meanwhile, held until the answer tells whether they are its echo), or answered with the version
    /// whose watch event will be its echo, which the reconcile that wrote it already knew.
    private let echoes = Mutex<[ObjectKey: EchoState]>([:])

    private enum EchoState {
        /// The apply is in flight; the versions of the Deployment watched since (at most two are kept:
        /// more than one is never the echo alone).
        case writing(held: [String?])
        /// The apply of `applied` (the Deployment as the cache compares it) answered with `version`.
        case expected(version: String?, applied: JSONValue)
    }

    /// What a watched Deployment is to the reconciler that wrote it.
    enum Echo: Equatable {
        /// Not (or no longer) expected: someone else's change, or a later one.
        case none
        /// The echo of cwo's own write of `applied` (the Deployment as the cache compares it).
        case echo(applied: JSONValue)
        /// Came while cwo's apply of it is in flight: the reconcile writing it decides (`answered`).
        case held
    }

    /// What the events held during a Deployment write were, once its answer came (`answered`).
    enum Answer: Equatable {
        /// None came: the echo of a write (an answer with a version) is still to come, and is expected.
        case nothingCame
        /// The echo alone came, before the answer: the reconcile settles it as the watch would have.
        case echoCame
        /// Something else came (another writer's version, a second write, or an event of a write that
        /// failed or was not sent): the workload needs another reconcile.
        case changedMeanwhile
        /// No write was in flight.
        case notWriting
    }

    /// The reconcile of `key` is about to apply its Deployment: its watch events are held until `answered`.
    func writing(_ key: ObjectKey) {
        echoes.withLock { $0[key] = .writing(held: []) }
    }

    /// The apply of `key`'s Deployment begun with `writing` answered with `version` (nil: it failed, or
    /// wrote nothing); `applied` is the Deployment as the cache compares it.
    func answered(_ key: ObjectKey, version: String?, applied: JSONValue?) -> Answer {
        echoes.withLock { echoes in
            guard case .writing(let held) = echoes[key] else { return .notWriting }
            if held.isEmpty {
                if let version, let applied {
                    echoes[key] = .expected(version: version, applied: applied)
                } else {
                    echoes[key] = nil
                }
                return .nothingCame
            }
            echoes[key] = nil
            return version != nil && held == [version] ? .echoCame : .changedMeanwhile
        }
    }

    /// A reconcile waiting for its Deployment write to come back through the watch (`awaitDelivery`).
    private struct DeliveryWaiter {
        var id: UInt64
        var continuation: CheckedContinuation<Void, Never>
    }
    private let deliveries = Mutex<(nextID: UInt64, waiting: [ObjectKey: DeliveryWaiter])>((0, [:]))

    /// Returns at `key`'s next Deployment watch event (`childEvent`), or after `limit`, or at once if
    /// `delivered()` says that event came already (checked under the same lock the event's wake-up takes,
    /// so an event between the check and the wait still ends it).
    func awaitDelivery(_ key: ObjectKey, within limit: Duration, unless delivered: () -> Bool) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id: UInt64? = deliveries.withLock { state in
                guard !delivered() else { return nil }
                state.nextID += 1
                // Never two reconciles of one key at once: a waiter left here is stale.
                state.waiting.updateValue(DeliveryWaiter(id: state.nextID, continuation: continuation), forKey: key)?.continuation.resume()
                return state.nextID
            }
            guard let id else { return continuation.resume() }
            Task { [weak self] in
                try? await Task.sleep(for: limit)
                self?.wakeDelivery(key, id: id)
            }
        }
    }

    /// Ends `key`'s `awaitDelivery` (only the wait `id`, when given).
    private func wakeDelivery(_ key: ObjectKey, id: UInt64? = nil) {
        let waiter = deliveries.withLock { state -> DeliveryWaiter? in
            guard let waiter = state.waiting[key], id == nil || waiter.id == id else { return nil }
            return state.waiting.removeValue(forKey: key)
        }
        waiter?.continuation.resume()
    }

    /// Whether a watched Deployment of `key` at `version` is that echo (forgotten once seen, or once a
    /// later version shows the expectation is stale), or is held for the write in flight.
    func echo(_ key: ObjectKey, version: String?) -> Echo {
        echoes.withLock { echoes in
            switch echoes[key] {
            case nil:
                return .none
            case .writing(var held):
                if held.count < 2 { held.append(version) }
                echoes[key] = .writing(held: held)
                return .held
            case .expected(let expected, let applied):
                echoes[key] = nil
                return expected == version ? .echo(applied: applied) : .none
            }
        }
    }

    /// The memory of `key` for the workload with `uid` (empty for another uid).
    func read(_ key: ObjectKey, uid: String?) -> WorkloadMemory {
        entries.withLock { entries in
            guard let memory = entries[key]?.memory, memory.uid == uid else { return WorkloadMemory(uid: uid) }
            return memory
        }
    }

    /// Changes the memory of `key` (starting afresh for another uid).
    @discardableResult
    func update<R>(_ key: ObjectKey, uid: String?, _ change: (inout WorkloadMemory) -> R) -> R {
        entries.withLock { entries in
            guard let box = entries[key], box.memory.uid == uid else {
                var memory = WorkloadMemory(uid: uid)
                let result = change(&memory)
                entries[key] = Box(memory)
                return result
            }
            return change(&box.memory)
        }
    }

    /// cwo's last write of `what` (a resource's plural, or "status") for the workload with `uid`.
    func written(_ key: ObjectKey, uid: String?, _ what: String) -> WorkloadMemory.Written? {
        entries.withLock { entries in
            guard let box = entries[key], box.memory.uid == uid else { return nil }
            return box.memory.written[what]
        }
    }

    /// A watch event of `key`'s child `what` (its resource's plural): the cache now shows cwo's last write
    /// of it, or went past it (a child deleted right after cwo created it must be created again). The
    /// store is updated before this is called, so a reconcile that read the write first and the cache
    /// after sees either the write still pending or the cache that shows it.
    func childEvent(_ key: ObjectKey, _ what: String) {
        if what == Resource.deployments.plural { wakeDelivery(key) }
        entries.withLock { entries in
            guard let box = entries[key], box.memory.written[what] != nil else { return }
            box.memory.written[what] = nil
        }
    }

    /// Sets (or, with nil, drops) cwo's last write of `what` for the workload with `uid`.
    func setWritten(_ key: ObjectKey, uid: String?, _ what: String, _ written: WorkloadMemory.Written?) {
        if written == nil, self.written(key, uid: uid, what) == nil { return }
        update(key, uid: uid) { $0.written[what] = written }
    }

    /// The remembered desired state and image needs of `key`, marked as used.
    func recall(_ key: ObjectKey, uid: String?) -> (build: WorkloadMemory.BuildMemo?, imageNeeds: WorkloadMemory.ImageNeeds?) {
        entries.withLock { entries in
            guard let box = entries[key], box.memory.uid == uid else { return (nil, nil) }
            box.memory.buildUsed = true
            return (box.memory.build, box.memory.imageNeeds)
        }
    }

    /// The live Deployment of `key` settled (the cache keeps a summary): its remembered desired state
    /// needs no Deployment spec until the Deployment changes. Freed at once, while a burst of reconciles
    /// is still allocating, the ~3 KB is reused rather than left as a hole between cached objects.
    func deploymentSettled(_ key: ObjectKey) {
        entries.withLock { entries in
            guard let box = entries[key], var build = box.memory.build else { return }
            build.dropDeploymentSpec()
            box.memory.build = build
        }
    }

    /// Forgets the desired states (and image needs) no reconcile used since the last sweep; returns how
    /// many. The memo spares hot workloads a rebuild (~2 ms: the policy); a settled workload is reconciled
    /// seldom, and holding its desired state would cost several KB per workload for nothing. What cwo
    /// wrote (`written`) goes with it: it only bridges a cache that has not yet shown a write, and a
    /// workload quiet for a whole sweep (30 s or more) has been seen; a cache lagging longer costs at
    /// worst one repeated, unchanged apply. A memory left empty is dropped, so a settled workload costs
    /// nothing here (~600 bytes each before: the entry, its box and the written digests); the key
    /// release state stays.
    @discardableResult
    func forgetQuietDesiredStates() -> Int {
        let forgotten = entries.withLock { entries in
            var forgotten = 0
            var empty: [ObjectKey] = []
            for (key, box) in entries {
                if !box.memory.buildUsed {
                    if box.memory.build != nil || box.memory.imageNeeds != nil {
                        box.memory.build = nil
                        box.memory.imageNeeds = nil
                        forgotten += 1
                    }
                    box.memory.written = [:]
                    if box.memory.isEmpty { empty.append(key) }
                }
                box.memory.buildUsed = false
            }
            for key in empty { entries[key] = nil }
            Self.shrink(&entries)
            return forgotten
        }
        echoes.withLock { Self.shrink(&$0) }
        return forgotten
    }

    /// A dictionary keeps the room it grew to in a burst; once it holds under a quarter of that, a copy
    /// sized for what is left frees the rest.
    private static func shrink<Key, Value>(_ dictionary: inout [Key: Value]) {
        guard dictionary.capacity > 64, dictionary.count * 4 < dictionary.capacity else { return }
        var sized = [Key: Value](minimumCapacity: dictionary.count)
        for (key, value) in dictionary { sized[key] = value }
        dictionary = sized
    }

    /// Whether anything is remembered of `key` (for tests).
    func remembers(_ key: ObjectKey) -> Bool {
        entries.withLock { $0[key] != nil }
    }

    func forget(_ key: ObjectKey) {
        entries.withLock { _ = $0.removeValue(forKey: key) }
    }

    /// Counts one more consecutive key-release failure of the workload; returns how many there have been.
    func recordFailure(_ workload: ConfidentialWorkload) -> Int {
        update(ObjectKey(workload), uid: workload.metadata.uid) { memory in
            memory.keyReleaseFailures += 1
            return memory.keyReleaseFailures
        }
    }

    /// Adds `finalizer` to the workload unless it has it, or cwo added it already and the cache lags.
    func ensure(_ finalizer: Finalizer, on workload: ConfidentialWorkload) async throws {
        let key = ObjectKey(workload)
        let uid = workload.metadata.uid
        guard !finalizer.isSet(on: workload.metadata), !read(key, uid: uid).finalizersAdded.contains(finalizer.name) else { return }
        try await finalizer.add(to: workload.metadata)
        update(key, uid: uid) { _ = $0.finalizersAdded.insert(finalizer.name) }
    }

    /// Removes `finalizer` from the workload and forgets the key release state it guarded.
    func release(_ finalizer: Finalizer, from workload: ConfidentialWorkload) async throws {
        try await finalizer.remove(from: workload.metadata)
        update(ObjectKey(workload), uid: workload.metadata.uid) { memory in
            memory.finalizersAdded.remove(finalizer.name)
            memory.keyRelease = nil
            memory.keyReleaseFailures = 0
            memory.keyReleaseHold = nil
        }
    }
}

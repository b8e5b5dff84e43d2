#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FoundationExtras
import KubernetesClient
import Logging
import Synchronization

/// Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics: a candidate takes
/// the lease only after watching it go unrenewed for a full lease duration (no clock comparison between
/// machines), the leader renews every retry period and gives up when it could not renew within the
/// renew deadline (before anyone else may take over), and a graceful stop releases the lease so a
/// successor takes over at once.
public final class LeaderElector: Sendable {
    public struct Configuration: Sendable {
        public var namespace: String
        public var name: String
        public var identity: String
        public var leaseDuration: Duration = .seconds(15)
        public var renewDeadline: Duration = .seconds(10)
        public var retryPeriod: Duration = .seconds(2)

        public init(namespace: String, name: String, identity: String) {
            self.namespace = namespace
            self.name = name
            self.identity = identity
        }
    }

    public struct LostLeadership: Error, CustomStringConvertible {
        public var description: String { "lost the leader lease: could not renew it within the renew deadline" }
    }

    let client: KubeClient
    let configuration: Configuration
    let logger: Logger
    let onChange: @Sendable (Bool) -> Void
    private let state = Mutex(State())

    struct State {
        var observed: JSONValue?
        var observedAt = ContinuousClock.now
        var isLeader = false
    }

    public var isLeader: Bool { state.withLock { $0.isLeader } }

    public init(client: KubeClient, configuration: Configuration, logger: Logger, onChange: @escaping @Sendable (Bool) -> Void = { _ in }) {
        self.client = client
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "lease"] = "\(configuration.namespace)/\(configuration.name)"
        self.logger = logger
        self.onChange = onChange
    }

    /// Waits for the lease, runs `work` while holding it, and releases it when `work` returns after a
    /// cancellation. Throws `LostLeadership` when renewing failed (after cancelling `work`).
    public func run(_ work: @escaping @Sendable () async -> Void) async throws {
        logger.info("waiting for the leader lease", metadata: ["identity": "\(configuration.identity)"])
        while !Task.isCancelled {
            do {
                if try await tryAcquireOrRenew() { break }
            } catch {
                logger.warning("could not acquire the lease", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: configuration.retryPeriod)
        }
        guard !Task.isCancelled else { return }
        setLeader(true)
        logger.info("became leader", metadata: ["identity": "\(configuration.identity)"])

        let lost = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                await work()
                return false
            }
            group.addTask {
                var lastRenew = ContinuousClock.now
                while true {
                    do { try await Task.sleep(for: self.configuration.retryPeriod) } catch { return false }
                    let renewed: Bool
                    do {
                        renewed = try await self.tryAcquireOrRenew()
                    } catch {
                        self.logger.warning("could not renew the lease", metadata: ["error": "\(error)"])
                        renewed = false
                    }
                    if renewed {
                        lastRenew = .now
                    } else if ContinuousClock.now - lastRenew > self.configuration.renewDeadline {
                        return true
                    }
                }
            }
            // Whichever ends first: the work (a graceful stop) or the renewals (leadership lost).
            let first = try await group.next() ?? false
            group.cancelAll()
            // Stop all work before returning: nobody may act for us once the lease can be taken.
            while let _ = try? await group.next() {}
            return first
        }
        setLeader(false)
        if lost {
            logger.error("lost leadership; stopped all work")
            throw LostLeadership()
        }
        // We are being stopped (cancelled); the release itself must not be cancelled with us.
        await Task { await self.release() }.value
    }

    private func setLeader(_ value: Bool) {
        state.withLock { $0.isLeader = value }
        onChange(value)
    }

    /// metav1.MicroTime: RFC 3339 with exactly six fractional digits (the server rejects other widths).
    public static func microTime(_ date: Date = Date()) -> String {
        let seconds = date.timeIntervalSince1970
        let whole = seconds.rounded(.down)
        let micros = min(Int((seconds - whole) * 1_000_000), 999_999)
        let base = Date(timeIntervalSince1970: whole).formatted(Date.ISO8601FormatStyle(timeZone: .gmt))
        return String(base.dropLast()) + "." + micros.decimal(width: 6) + "Z"
    }

    /// One attempt: true when we hold the lease afterwards.
    func tryAcquireOrRenew() async throws -> Bool {
        let now = Self.microTime()
        let lease: UntypedObject
        do {
            lease = try await client.get(.leases, namespace: configuration.namespace, name: configuration.name)
        } catch let error as KubeError where error.reason == .notFound {
            let body: JSONValue = [
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": ["name": .string(configuration.name), "namespace": .string(configuration.namespace)],
                "spec": [
                    "holderIdentity": .string(configuration.identity), "leaseDurationSeconds": .number(Double(configuration.leaseDuration.components.seconds)),
                    "acquireTime": .string(now), "renewTime": .string(now), "leaseTransitions": 0,
                ],
            ]
            let _: UntypedObject = try await client.create(.leases, namespace: configuration.namespace, try UntypedObject(body))
            return true
        }
        let spec = lease.raw["spec"] ?? [:]
        let holder = spec["holderIdentity"]?.stringValue ?? ""
        let record = spec
        let expired = state.withLock { state -> Bool in
            if state.observed != record {
                state.observed = record
                state.observedAt = .now
            }
            let duration = Duration.seconds(spec["leaseDurationSeconds"]?.intValue ?? 15)
            return state.observedAt + duration < .now
        }
        if holder != configuration.identity && !holder.isEmpty && !expired { return false }

        var updated = lease.raw
        var newSpec = spec.objectValue ?? [:]
        if holder != configuration.identity {
            newSpec["acquireTime"] = .string(now)
            newSpec["leaseTransitions"] = .number(Double((spec["leaseTransitions"]?.intValue ?? 0) + 1))
        }
        newSpec["holderIdentity"] = .string(configuration.identity)
        newSpec["leaseDurationSeconds"] = .number(Double(configuration.leaseDuration.components.seconds))
        newSpec["renewTime"] = .string(now)
        updated["spec"] = .object(newSpec)
        // The resourceVersion in the body makes this a compare-and-swap: two candidates cannot both win.
        let written: UntypedObject = try await client.replace(.leases, namespace: configuration.namespace, name: configuration.name, try UntypedObject(updated))
        state.withLock {
            $0.observed = written.raw["spec"]
            $0.observedAt = .now
        }
        return true
    }

    /// Gives the lease up (holder cleared, 1 s duration) so a successor need not wait it out.
    func release() async {
        do {
            let lease: UntypedObject = try await client.get(.leases, namespace: configuration.namespace, name: configuration.name)
            guard lease.raw[path: ["spec", "holderIdentity"]]?.stringValue == configuration.identity else { return }
            var updated = lease.raw
            updated["spec"]?["holderIdentity"] = ""
            updated["spec"]?["leaseDurationSeconds"] = 1
            updated["spec"]?["renewTime"] = .string(Self.microTime())
            let _: UntypedObject = try await client.replace(.leases, namespace: configuration.namespace, name: configuration.name, try UntypedObject(updated))
            logger.info("released the lease")
        } catch {
            logger.warning("could not release the lease", metadata: ["error": "\(error)"])
        }
    }
}

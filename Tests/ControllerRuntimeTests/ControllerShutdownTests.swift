@testable import ControllerRuntime
import Logging
import Synchronization
import Testing

@Suite("Controller shutdown")
struct ControllerShutdownTests {
    /// Counts reconciles; each one takes `duration` and fails if it is cancelled meanwhile.
    final class SlowReconciler: Reconciler {
        let duration: Duration
        let started = Mutex(0)
        let finished = Mutex(0)
        let cancelled = Mutex(0)
        init(duration: Duration) { self.duration = duration }

        func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
            started.withLock { $0 += 1 }
            do {
                try await Task.sleep(for: duration)
            } catch {
                cancelled.withLock { $0 += 1 }
                throw error
            }
            finished.withLock { $0 += 1 }
            return .done
        }
    }

    @Test func aShutdownLetsTheReconcilesInTheQueueFinishUncancelled() async throws {
        let reconciler = SlowReconciler(duration: .milliseconds(300))
        let controller = Controller(name: "test", reconciler: reconciler, options: .init(concurrency: 1), logger: Logger(label: "test"))
        let running = Task { await controller.run() }
        await controller.queue.add(ObjectKey(namespace: "ns", name: "first"))
        await controller.queue.add(ObjectKey(namespace: "ns", name: "second"))
        while reconciler.started.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(5)) }
        running.cancel()
        await running.value
        // As client-go's queue: the key in progress and the one waiting both run to the end, uncancelled;
        // then the workers stop and `run` returns.
        #expect(reconciler.cancelled.withLock { $0 } == 0)
        #expect(reconciler.finished.withLock { $0 } == 2)
        // Nothing added after the shutdown runs.
        await controller.queue.add(ObjectKey(namespace: "ns", name: "third"))
        try await Task.sleep(for: .milliseconds(50))
        #expect(reconciler.started.withLock { $0 } == 2)
    }
}

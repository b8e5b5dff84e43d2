import ControllerRuntime
import Logging
import ServiceLifecycle

/// Every 15 s, hands the heap freed after a burst back to the system; and once cwo has been quiet for two
/// rounds in a row (under 1 % of a core each), the pages of its own binary, again whenever more than a MiB
/// came back beyond what a quiet cwo maps: starting and a burst leave ~13 MB of the binary mapped, a quiet
/// cwo maps back ~6 MB. What cwo runs next is mapped again on first use: minor page faults where the page
/// cache still holds the file, reads where it does not. Off with `--no-release-idle-code`.
struct IdleMemoryService: Service {
    var releaseCode: Bool
    var logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var quiet = IdleMemory.QuietRounds(rounds: 2, cpuPerRound: 0.15)
            _ = quiet.record(cpuSeconds: IdleMemory.processCPUSeconds())
            var schedule = IdleMemory.PageOutSchedule()
            while true {
                do { try await Task.sleep(for: .seconds(15)) } catch { return }
                IdleMemory.trimHeap()
                let isQuiet = quiet.record(cpuSeconds: IdleMemory.processCPUSeconds())
                guard releaseCode, schedule.round(quiet: isQuiet, mappedFileBytes: IdleMemory.mappedFileBytes()) else { continue }
                let advised = IdleMemory.pageOutExecutable()
                logger.debug("handed back the idle pages of cwo's binary", metadata: ["advisedBytes": "\(advised)", "mappedFileBytes": "\(IdleMemory.mappedFileBytes())"])
            }
        }
    }
}

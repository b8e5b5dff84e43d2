import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A free TCP port on loopback (bound, read, released).
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A program running in the background, its output in a log file; stopped by signal.
public final class BackgroundProcess: @unchecked Sendable {
    public let pid: pid_t
    public let logPath: String
    private let lock = NSLock()
    private var exitStatus: Int32?

    public init(_ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-process-\(UUID().uuidString).log").path
        pid = try startProcess(arguments, environment: environment, outputPath: logPath)
    }

    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// Waits for the process to exit (up to `timeout`); its exit code, or nil if it still runs.
    public func wait(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = poll() { return status }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return poll()
    }

    private func poll() -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        exitStatus = exitCode(status)
        return exitStatus
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Makes sure it is gone (tests call this in `defer`).
    public func stop() {
        if poll() == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    deinit { stop() }
}

/// The `cwo` binary the tests run (built by `swift build --build-tests`).
public var cwoBinary: String {
    get throws {
        let path = TestCluster.packageRoot + "/.build/debug/cwo"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestClusterError(message: "\(path) is missing: build with `swift build --build-tests` (scripts/test does)")
        }
        return path
    }
}

import AsyncHTTPClient
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore

/// Root hashes by layer blob digest: a blob's bytes never change, so each layer is downloaded and hashed
/// once per process, however many images and workloads share it. Concurrent asks for one layer wait for
/// the same computation; a failed one is forgotten, so the next resolution tries again.
actor TarfsLayerCache {
    private var done: [String: TarfsLayer] = [:]
    private var running: [String: Task<TarfsLayer, any Error>] = [:]

    func layer(_ digest: String, compute: @escaping @Sendable () async throws(RegistryError) -> TarfsLayer) async throws(RegistryError) -> TarfsLayer {
        if let layer = done[digest] { return layer }
        let task = running[digest] ?? Task { try await compute() }
        running[digest] = task
        do {
            let layer = try await task.value
            done[digest] = layer
            running[digest] = nil
            return layer
        } catch {
            running[digest] = nil
            throw error as? RegistryError ?? RegistryError(kind: .unreachable, message: "\(error)", request: "layer \(digest)")
        }
    }

    var count: Int { done.count }
}

extension RegistryClient {
    /// Layer media types the node's snapshotter can decompress (it gunzips every layer).
    static let gzipLayerTypes = ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip"]
    /// A whole layer may take longer than a manifest: the read timeout still bounds every stall.
    static let layerHeadTimeout: Int64 = 60

    /// The layers of a manifest as the AKS node mounts them, lowest first, each checked against the diff ID
    /// the config states for it.
    func tarfsLayers(manifest: [String: Any], config: [String: Any], session: Session) async throws(RegistryError) -> [TarfsLayer] {
        let label = "\(session.image)"
        let layers = manifest["layers"] as? [[String: Any]] ?? []
        let diffIDs = (config["rootfs"] as? [String: Any])?["diff_ids"] as? [String] ?? []
        guard diffIDs.count == layers.count else {
            throw RegistryError(kind: .manifestUnsupported, message: "the manifest has \(layers.count) layers but the config \(diffIDs.count) diff IDs", request: label)
        }
        var result: [TarfsLayer] = []
        for (layer, diffID) in zip(layers, diffIDs) {
            let mediaType = layer["mediaType"] as? String ?? ""
            guard let digest = layer["digest"] as? String, ImageReference.isDigest(digest) else {
                throw RegistryError(kind: .manifestUnsupported, message: "a layer has no sha256 digest", request: label)
            }
            guard Self.gzipLayerTypes.contains(mediaType) else {
                throw RegistryError(kind: .manifestUnsupported,
                                    message: "layer \(digest) has media type \"\(mediaType)\": the AKS node's tardev snapshotter mounts gzip layers only", request: label)
            }
            let computed = try await tarfsCache.layer(digest) { [self] () async throws(RegistryError) -> TarfsLayer in
                try await hashLayer(digest, diffID: diffID, session: session)
            }
            // The cache is by blob; a config that names other bytes for this blob is wrong.
            guard computed.diffID == diffID else {
                throw RegistryError(kind: .manifestUnsupported,
                                    message: "layer \(digest) decompresses to \(computed.diffID), not the diff ID \(diffID) the config states", request: label)
            }
            result.append(computed)
        }
        return result
    }

    /// Downloads one layer blob, streaming it through the hasher.
    func hashLayer(_ digest: String, diffID: String, session: Session) async throws(RegistryError) -> TarfsLayer {
        var session = session
        let label = "GET \(session.image.apiHost)/v2/\(session.image.repository)/blobs/\(digest)"
        var hasher: TarfsLayerHasher
        do { hasher = try TarfsLayerHasher() } catch { throw RegistryError(kind: .manifestUnsupported, message: error.message, request: label) }
        let response = try await openBlob(digest, session: &session)
        do {
            for try await chunk in response.body {
                try Task.checkCancellation()
                try hasher.update(compressed: chunk)
            }
        } catch let error as TarfsLayerError {
            throw RegistryError(kind: .manifestUnsupported, message: "layer \(digest): \(error.message)", request: label)
        } catch {
            throw RegistryError(kind: .unreachable, message: "reading layer \(digest): \(error)", request: label)
        }
        do {
            let layer = try hasher.finish(digest: digest, diffID: diffID)
            logger.debug("layer hashed", metadata: ["layer": "\(digest)", "rootHash": "\(layer.rootHash)"])
            return layer
        } catch {
            throw RegistryError(kind: .manifestUnsupported, message: "layer \(digest): \(error.message)", request: label)
        }
    }

    /// A blob's response, its body not read yet: authorized as `get` does (a 401 answered once), redirects
    /// followed without the registry's authorization, 429 and 5xx retried.
    func openBlob(_ digest: String, session: inout Session) async throws(RegistryError) -> HTTPClientResponse {
        let path = "/v2/\(session.image.repository)/blobs/\(digest)"
        let label = "GET \(session.image.apiHost)\(path)"
        var url = "https://\(session.image.apiHost)\(path)"
        var authorization = session.authorization
        var authorized = false
        var redirects = 0
        var attempt = 0
        while true {
            attempt += 1
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Accept", value: "*/*")
            request.headers.add(name: "User-Agent", value: options.userAgent)
            if let authorization { request.headers.add(name: "Authorization", value: authorization) }
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, timeout: .seconds(Self.layerHeadTimeout))
            } catch {
                if error is CancellationError || Task.isCancelled { throw RegistryError(kind: .unreachable, message: "cancelled", request: label) }
                guard attempt < options.maxAttempts else { throw RegistryError(kind: .unreachable, message: "\(error)", request: label) }
                try await pause(Self.backoff(attempt: attempt), label: label)
                continue
            }
            let code = Int(response.status.code)
            logger.debug("registry request", metadata: ["request": "\(label)", "code": "\(code)"])
            if (200..<300).contains(code) { return response }
            let body = (try? await response.body.collect(upTo: 64 * 1024)).map { Array($0.readableBytesView) } ?? []
            if code == 401, !authorized, redirects == 0, let challenge = response.headers.first(name: "WWW-Authenticate") {
                authorized = true
                session.authorization = try await authorize(challenge, session: session, label: label)
                authorization = session.authorization
                continue
            }
            if [301, 302, 303, 307, 308].contains(code), let location = response.headers.first(name: "Location"), redirects < 3 {
                redirects += 1
                url = URL(string: location, relativeTo: URL(string: url))?.absoluteString ?? location
                // The storage host gets no registry credentials.
                authorization = nil
                continue
            }
            let failure = RegistryError(kind: RegistryError.kind(forStatus: code), status: code, message: Self.detail(body) ?? "HTTP \(code)", request: label)
            guard failure.kind == .unreachable, attempt < options.maxAttempts else { throw failure }
            let delay = response.headers.first(name: "Retry-After").flatMap(Int.init).map { Duration.seconds(max($0, 0)) } ?? Self.backoff(attempt: attempt)
            guard delay <= options.maxRetryAfter else { throw failure }
            try await pause(delay, label: label)
        }
    }

    private func pause(_ delay: Duration, label: String) async throws(RegistryError) {
        do { try await Task.sleep(for: delay) } catch { throw RegistryError(kind: .unreachable, message: "cancelled", request: label) }
    }
}

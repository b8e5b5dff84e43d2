import ConfidentialWorkload
import ControllerRuntime
import Foundation
import Testing

/// Timestamps on the wire keep the exact form they had with full Foundation, where the UTC zone could be
/// named (without ICU it cannot, so the code now says `.gmt`).
@Suite struct TimestampTests {
    static let dates: [Date] = [
        Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 1_764_639_000.25), Date(timeIntervalSince1970: 1_767_225_599.999_999),
        Date(timeIntervalSince1970: 951_782_400.000_001), Date(timeIntervalSince1970: 4_102_444_800.5),
    ]

    @Test(arguments: dates)
    func statusTimesAreRFC3339InUTC(date: Date) {
        let utc = Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC") ?? .current)
        #expect(StatusBuilder.timestamp(date) == date.formatted(utc))
    }

    @Test(arguments: dates)
    func leaseTimesHaveSixFractionalDigits(date: Date) {
        let seconds = date.timeIntervalSince1970
        let whole = seconds.rounded(.down)
        let micros = min(Int((seconds - whole) * 1_000_000), 999_999)
        let utc = Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC") ?? .current)
        let expected = String(Date(timeIntervalSince1970: whole).formatted(utc).dropLast()) + String(format: ".%06dZ", micros)
        #expect(LeaderElector.microTime(date) == expected)
    }
}

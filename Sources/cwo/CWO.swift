import ArgumentParser

@main
struct CWO: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cwo",
        abstract: "The Confidential Workload Operator: one ConfidentialWorkload becomes a confidential Deployment, kept in sync.",
        subcommands: [Run.self, Render.self, Policy.self])
}

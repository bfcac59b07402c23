import Testing
@testable import AttentionModels

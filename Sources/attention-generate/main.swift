import AttentionCommands

CommandMain.run(AttentionGenerate.self)

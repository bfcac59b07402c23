import AttentionCommands

CommandMain.run(AttentionEmbed.self)

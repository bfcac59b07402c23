import AttentionCommands

CommandMain.run(AttentionTrain.self)

"""Chat platform adapters: they turn platform traffic into :class:`bot.identity.Inbound` and
render :class:`bot.reply.Reply`; they know nothing about handlers."""

"""Backtesting on the bot's own strategy and risk rules: ``python bot.py backtest`` (cli.py)."""

"""Soak test of the bot: run `python bot.py` live against a hosted simulator for minutes while
injecting every simulator fault and restarting the bot at random (seeded), then check from
outside the bot that it kept its promises (issue 12).

    python -m soak --minutes 3 --seed 1        # prints the report; exit code 1 on a violation

Layout: plan.py (the seeded schedule), model.py (recorded values), invariants.py and report.py
(pure functions over a Recording), and the I/O: driver.py (the loop), faults.py (injection),
botproc.py (the bot process), observe.py (simulator, journal read-only, /proc). strategy.py is
loaded inside the bot (STRATEGY=soak.strategy:churn) so it trades every minute.

Nothing is imported here: the bot imports soak.strategy, which must stay light.
"""

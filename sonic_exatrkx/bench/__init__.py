"""Benchmark engines behind `sonic-exatrkx bench ...`: library functions that measure and
return results; the CLI only parses options and calls them.

The seeds' studies (``bench STUDY``, ``bench all``, ``bench compare``) are in
:mod:`.studies` (one module per study), run and written by :mod:`.suite`, saved by
:mod:`.results` with :mod:`.machine`'s description of the machine, drawn by :mod:`.plots`
against :mod:`.references` (the seeds' figures). They reuse the engines of the older
commands: :mod:`.serve` (direct and served passes), :mod:`.sonic` (framework jobs, the delay
proxy), :mod:`.workers`. :mod:`.perf_input` writes perf_analyzer's JSON input.
"""

"""``python -m sonic_exatrkx``: the ``sonic-exatrkx`` command line."""

from sonic_exatrkx.cli.main import app

app(prog_name="sonic-exatrkx")

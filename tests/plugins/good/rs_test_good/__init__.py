"""A well-behaved test plugin."""

from river_supervisor import Plugin

plugin = Plugin("rsgood")


@plugin.job("rsgood.echo", queue="default", max_attempts=3)
def echo(job):
    return {"echo": job.args, "plugin": "rsgood"}


plugin.periodic("rsgood.echo", id="rsgood-every-minute", every="1m", args={"tick": True})

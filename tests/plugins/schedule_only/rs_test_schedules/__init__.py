"""A test plugin that only ships a schedule, for a kind another plugin handles."""

from river_supervisor import Plugin

plugin = Plugin("rsschedules")
plugin.periodic("rsgood.echo", id="rsschedules-nightly", cron="0 3 * * *", timezone="Europe/Berlin")

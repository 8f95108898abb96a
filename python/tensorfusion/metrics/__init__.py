"""Metrics: points in the influx data model, their line-protocol text form, sinks and alerts.

`Point` (in `tensorfusion.metrics.point`) is the one record type every recorder, sink and
alert rule exchanges; `tensorfusion.metrics.line_protocol` turns points into influx line
protocol and back.
"""

"""When a pipeline runs: :class:`Schedule` (cron, interval or once) and its time zone rules.

croniter and zoneinfo are imported only when a cron expression is checked or a zone is looked up.
"""

from __future__ import annotations

import datetime as dt
import os

from ._config_base import ConfigObject
from ._config_checks import (
    as_bool,
    as_opt_str,
    as_seconds,
    invalid,
)
from .errors import ConfigurationError


def _zone(name: str | None) -> dt.tzinfo | None:
    if name is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise invalid("Schedule", "timezone", "an IANA time zone name such as 'Europe/Paris'", name)


def _local_zone() -> dt.tzinfo:
    """The machine's time zone with its DST rules: ``$TZ`` or ``/etc/localtime`` as an IANA
    zone when they name one, else the current UTC offset (which ignores DST changes)."""
    from zoneinfo import ZoneInfo

    link = os.path.realpath("/etc/localtime")
    for key in (os.environ.get("TZ", "").lstrip(":"), link.partition("/zoneinfo/")[2]):
        if key:
            try:
                return ZoneInfo(key)
            except (LookupError, ValueError, OSError):
                continue
    zone = dt.datetime.now().astimezone().tzinfo
    assert zone is not None  # astimezone() always returns an aware datetime
    return zone


def _utc(field: str, value: object, zone: dt.tzinfo | None) -> dt.datetime | None:
    """``value`` as an aware UTC datetime; a naive one is wall-clock time in ``zone``, or in the
    machine's local time zone when ``zone`` is ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise invalid("Schedule", field, "a datetime or an ISO-8601 string", value) from None
    if not isinstance(value, dt.datetime):
        raise invalid("Schedule", field, "a datetime", value)
    if value.utcoffset() is None:
        value = value.replace(tzinfo=zone) if zone is not None else value.astimezone()
    return value.astimezone(dt.UTC)


def _check_cron(expression: object) -> str:
    if not isinstance(expression, str) or not expression.strip():
        raise invalid("Schedule", "cron_expression", "a cron expression string", expression)
    expression = " ".join(expression.split())
    from croniter import CroniterBadDateError, CroniterError, croniter

    try:
        # One evaluation also catches expressions that parse but never fire ("0 0 31 2 *").
        croniter(expression, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).get_next(dt.datetime)
    except CroniterBadDateError:
        reason = "it never matches any date"
    except (CroniterError, ValueError, KeyError, IndexError) as exc:
        reason = str(exc) or type(exc).__name__
    else:
        return expression
    raise ConfigurationError(
        f"Schedule: cron_expression {expression!r} is not a valid cron expression ({reason})"
    )


class Schedule(ConfigObject):
    """When to run a pipeline: ``p.run(schedule=Schedule(cron_expression="0 2 * * *"))``.

    Exactly one of ``cron_expression``, ``interval_second`` or ``run_once_start_time`` is set.
    ``start_time``/``end_time`` bound a cron or interval schedule. Datetimes are stored as aware
    UTC; a naive one means wall-clock time in ``timezone``, or local time when ``timezone`` is
    ``None``. ``timezone`` (an IANA name; ``None`` means the machine's local zone) is also the zone
    the cron expression is evaluated in. ``interval_second`` is stored as float seconds.

    Attributes:
        cron_expression: A croniter expression (5 fields, optional seconds and year fields).
        start_time: No run before this instant.
        end_time: No run after this instant (must be after ``start_time``).
        interval_second: Seconds between runs (a number or a ``timedelta``; > 0).
        run_once_start_time: Run once, at this instant.
        catchup: Whether missed ticks are run when the scheduler comes back (all of them) or
            only the latest one.
        name: The schedule's name (default: chosen when it is registered).
        timezone: IANA time zone for cron evaluation and naive datetimes.
    """

    cron_expression: str | None
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    interval_second: float | None
    run_once_start_time: dt.datetime | None
    catchup: bool
    name: str | None
    timezone: str | None

    def __init__(
        self,
        *,
        cron_expression: str | None = None,
        start_time: dt.datetime | str | None = None,
        end_time: dt.datetime | str | None = None,
        interval_second: float | dt.timedelta | None = None,
        run_once_start_time: dt.datetime | str | None = None,
        catchup: bool = False,
        name: str | None = None,
        timezone: str | None = None,
    ) -> None:
        zone = _zone(timezone)
        kinds = {
            "cron_expression": cron_expression,
            "interval_second": interval_second,
            "run_once_start_time": run_once_start_time,
        }
        chosen = {key: value for key, value in kinds.items() if value is not None}
        if len(chosen) != 1:
            got = ", ".join(f"{k}={v!r}" for k, v in chosen.items()) or "none of them"
            raise ConfigurationError(
                "Schedule: set exactly one of cron_expression, interval_second or "
                f"run_once_start_time; got {got}"
            )
        self._set(
            cron_expression=None if cron_expression is None else _check_cron(cron_expression),
            start_time=_utc("start_time", start_time, zone),
            end_time=_utc("end_time", end_time, zone),
            interval_second=None
            if interval_second is None
            else as_seconds("Schedule", "interval_second", interval_second, positive=True),
            run_once_start_time=_utc("run_once_start_time", run_once_start_time, zone),
            catchup=as_bool("Schedule", "catchup", catchup),
            name=as_opt_str("Schedule", "name", name),
            timezone=timezone,
        )
        if self.run_once_start_time is not None and (self.start_time or self.end_time):
            raise ConfigurationError(
                "Schedule: start_time/end_time do not apply to a run_once_start_time schedule, "
                f"got start_time={self.start_time!r}, end_time={self.end_time!r}"
            )
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            raise ConfigurationError(
                f"Schedule: end_time ({self.end_time.isoformat()}) must be after "
                f"start_time ({self.start_time.isoformat()})"
            )

    @property
    def kind(self) -> str:
        """``"cron"``, ``"interval"`` or ``"once"``."""
        if self.cron_expression is not None:
            return "cron"
        return "interval" if self.interval_second is not None else "once"

    @property
    def tzinfo(self) -> dt.tzinfo:
        """The zone cron expressions are evaluated in: ``timezone``, else the machine's zone."""
        return _zone(self.timezone) or _local_zone()

    @property
    def utc_start_time(self) -> str | None:
        """``start_time`` as an ISO-8601 UTC string (ZenML's property)."""
        return None if self.start_time is None else self.start_time.isoformat()

    @property
    def utc_end_time(self) -> str | None:
        """``end_time`` as an ISO-8601 UTC string (ZenML's property)."""
        return None if self.end_time is None else self.end_time.isoformat()

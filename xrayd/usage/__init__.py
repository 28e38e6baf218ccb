"""Daily usage: the file format, the collector that writes it, the cache and dashboards that read it.

- `files`: one CSV file per server-local date in `usage_dir`, its name and its rows.
- `cache`: parsed files kept in memory, keyed by (path, mtime, size, inode).
- `dashboard`: totals, series, per-user and top-domain tables over a window of dates.
- `logs`: access.log and its rotated siblings, in time order.
- `collector`: builds the files of the days not yet collected; `cron`: the cron file.
"""

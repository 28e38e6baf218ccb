"""xrayd: the root daemon of xray-report. It alone touches Xray's config, binary and logs."""

__version__ = "0.1.0"

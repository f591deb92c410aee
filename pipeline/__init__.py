"""scalegap: fit scaling curves to published AI results and project the frontier-minus-meek gap."""

__version__ = "0.1.0"

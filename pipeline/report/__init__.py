"""Reports: plots (matplotlib -> inline SVG) and rendering (jinja2 -> HTML, weasyprint -> PDF)."""

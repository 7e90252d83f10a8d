"""A local web app: colorize a photo by clicking colour hints (iColoriT)."""

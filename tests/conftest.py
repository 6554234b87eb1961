"""Shared fixtures for the core tests. The llmos.testing fixtures (llmos_home,
plugin_manager, standard_plugins) come from the installed pytest11 plugin."""

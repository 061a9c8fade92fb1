"""Declared dependencies: the npm packages a bot's approved save state
(`workspace/<bot>_save/package.json`) declares, read from the approved
commit, and the bot's own edits to that list shown as dependency changes."""

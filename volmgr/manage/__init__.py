"""The operator commands behind volmgr-manage, one module per category.

Each command is a function of the parsed ``conf`` (sub-command arguments under
``conf.command``) returning an exit code; none of them writes SQL (volmgr/db does).
"""

"""The admin users API (`/admin/users`, service_role only): its parameters, flows and SQL.

Internal to `madbase.protocol.auth`: import the modules, not this package.
"""

-- The login roles MadBase's services connect as, as Supabase has them, so that no request runs with
-- more rights than its service needs:
--   * authenticator: the data API's login. Not a superuser, NOINHERIT (it has no rights of its own
--     on the data), member of anon, authenticated and service_role (and of custom roles an owner
--     grants it, as for PostgREST), which a request switches to with `set_config('role', ...)`. A
--     function that switches role for the rest of the session can only reach those, never an
--     administrator, and the pool resets the role after every transaction.
--   * supabase_auth_admin: /auth/v1's login. It owns the auth tables (as on Supabase) and nothing
--     else; API roles cannot switch to it.
-- Migrations and the schema watcher keep the configured (administrator) login.
-- Passwords are set by the server at start (derived from the project's JWT secret), never here.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin login noinherit;
  end if;
end
$$;

-- 0001 created authenticator; make sure it is what PostgREST expects even if someone changed it.
-- (Attributes a non-superuser administrator may not touch are only changed when they are wrong.)
do $$
declare
  login_role text;
begin
  foreach login_role in array array['authenticator', 'supabase_auth_admin'] loop
    if (select rolsuper or rolbypassrls or rolcreaterole or rolcreatedb
          from pg_roles where rolname = login_role) then
      execute format('alter role %I nosuperuser nobypassrls nocreaterole nocreatedb', login_role);
    end if;
    execute format('alter role %I login noinherit', login_role);
  end loop;
end
$$;

-- authenticator may switch to the API roles and to roles the owner added for PostgREST (custom
-- roles are kept), never to a role with administrative rights: a token or a function could
-- otherwise reach them.
do $$
declare
  extra text;
begin
  for extra in
    select r.rolname from pg_auth_members m
      join pg_roles r on r.oid = m.roleid
      join pg_roles a on a.oid = m.member
     where a.rolname = 'authenticator'
       and r.rolname not in ('anon', 'authenticated', 'service_role')
       and (r.rolsuper or r.rolcreaterole or r.rolcreatedb or r.rolreplication
            or r.rolname like 'pg\_%' or r.rolname = 'supabase_auth_admin')
  loop
    execute format('revoke %I from authenticator', extra);
  end loop;
end
$$;
grant anon, authenticated, service_role to authenticator;

-- A non-superuser administrator must be a member of supabase_auth_admin to hand it the tables.
do $$
begin
  if not (select rolsuper from pg_roles where rolname = current_user) then
    execute format('grant supabase_auth_admin to %I', current_user);
  end if;
end
$$;

grant usage on schema auth to supabase_auth_admin;
alter role supabase_auth_admin set search_path = auth;
-- Supabase's limits for its auth login (a request's statements never take long).
alter role supabase_auth_admin set idle_in_transaction_session_timeout = '60s';

-- The auth tables (and the sequences they own) belong to supabase_auth_admin, as on Supabase.
do $$
declare
  t text;
begin
  for t in select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'auth' and c.relkind in ('r', 'p')
  loop
    execute format('alter table auth.%I owner to supabase_auth_admin', t);
  end loop;
end
$$;
grant all on all sequences in schema auth to supabase_auth_admin;
-- auth.uid() and friends stay owned by the administrator; the auth login may call them.
grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt() to supabase_auth_admin;

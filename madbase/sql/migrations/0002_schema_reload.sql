-- Schema cache reloading: after any DDL, tell MadBase's schema watcher (LISTEN pgrst) to reload,
-- as Supabase does for PostgREST with extensions.pgrst_ddl_watch / pgrst_drop_watch. Every
-- statement is idempotent: running this file again changes nothing.

create schema if not exists madbase;

create or replace function madbase.pgrst_ddl_watch() returns event_trigger
language plpgsql
as $$
begin
  -- Temporary objects are never part of the API: creating them must not reload the cache.
  if exists (
    select 1 from pg_event_trigger_ddl_commands() c
     where c.schema_name is null or c.schema_name not like 'pg\_temp%'
  ) then
    notify pgrst, 'reload schema';
  end if;
end
$$;

create or replace function madbase.pgrst_drop_watch() returns event_trigger
language plpgsql
as $$
begin
  if exists (
    select 1 from pg_event_trigger_dropped_objects() o
     where not o.is_temporary
  ) then
    notify pgrst, 'reload schema';
  end if;
end
$$;

-- Creating event triggers needs a superuser. Without one the cache reloads only on an explicit
-- `NOTIFY pgrst, 'reload schema'`, as with PostgREST on a managed database.
do $$
begin
  if not (select rolsuper from pg_roles where rolname = current_user) then
    raise notice 'not a superuser: schema reload event triggers not created';
    return;
  end if;
  if not exists (select 1 from pg_event_trigger where evtname = 'madbase_pgrst_ddl_watch') then
    create event trigger madbase_pgrst_ddl_watch on ddl_command_end
      execute function madbase.pgrst_ddl_watch();
  end if;
  if not exists (select 1 from pg_event_trigger where evtname = 'madbase_pgrst_drop_watch') then
    create event trigger madbase_pgrst_drop_watch on sql_drop
      execute function madbase.pgrst_drop_watch();
  end if;
end
$$;

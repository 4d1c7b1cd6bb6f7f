--
-- PostgreSQL database dump
--

-- Dumped from database version 15.8
-- Dumped by pg_dump version 15.8

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Data for Name: audit_log_entries; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

INSERT INTO "auth"."audit_log_entries" ("instance_id", "id", "payload", "created_at", "ip_address") VALUES ('00000000-0000-0000-0000-000000000000', 'a14d6214-9b39-48e1-bf94-c9bc9f1e6119', '{"action":"user_signedup","actor_id":"7cf66202-56e8-4531-a415-dddd2acbbe6c","actor_username":"alice@example.com","actor_via_sso":false,"log_type":"team","traits":{"provider":"email"}}', '2025-03-14 09:12:40.118233+00', '203.0.113.7');
INSERT INTO "auth"."audit_log_entries" ("instance_id", "id", "payload", "created_at", "ip_address") VALUES ('00000000-0000-0000-0000-000000000000', '0e54611c-36ad-4ca4-9a38-111fd4882eb3', '{"action":"login","actor_id":"7cf66202-56e8-4531-a415-dddd2acbbe6c","actor_username":"alice@example.com","actor_via_sso":false,"log_type":"account","traits":{"provider":"email"}}', '2025-03-14 09:26:53.581124+00', '203.0.113.7');
INSERT INTO "auth"."audit_log_entries" ("instance_id", "id", "payload", "created_at", "ip_address") VALUES ('00000000-0000-0000-0000-000000000000', '62346707-6889-4736-9db1-3ccdad57c7bf', '{"action":"token_refreshed","actor_id":"7cf66202-56e8-4531-a415-dddd2acbbe6c","actor_username":"alice@example.com","actor_via_sso":false,"log_type":"token","traits":{}}', '2025-03-14 10:27:02.774310+00', '203.0.113.7');
INSERT INTO "auth"."audit_log_entries" ("instance_id", "id", "payload", "created_at", "ip_address") VALUES ('00000000-0000-0000-0000-000000000000', '39fe3c6d-6b42-4af1-9386-12018b875b59', '{"action":"token_revoked","actor_id":"7cf66202-56e8-4531-a415-dddd2acbbe6c","actor_username":"alice@example.com","actor_via_sso":false,"log_type":"token","traits":{}}', '2025-03-14 10:27:02.776052+00', '203.0.113.7');
INSERT INTO "auth"."audit_log_entries" ("instance_id", "id", "payload", "created_at", "ip_address") VALUES ('00000000-0000-0000-0000-000000000000', '2ba647dd-44a6-4956-b123-04996f028aaf', '{"action":"user_confirmation_requested","actor_id":"e1d6513b-a56e-4abf-9c9c-2c7f05e48737","actor_username":"bob@example.com","actor_via_sso":false,"log_type":"user","traits":{"provider":"email"}}', '2025-03-15 18:02:11.209871+00', '203.0.113.7');

--
-- Data for Name: custom_oauth_providers; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: flow_state; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: users; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

INSERT INTO "auth"."users" ("instance_id", "id", "aud", "role", "email", "encrypted_password", "email_confirmed_at", "invited_at", "confirmation_token", "confirmation_sent_at", "recovery_token", "recovery_sent_at", "email_change_token_new", "email_change", "email_change_sent_at", "last_sign_in_at", "raw_app_meta_data", "raw_user_meta_data", "is_super_admin", "created_at", "updated_at", "phone", "phone_confirmed_at", "phone_change", "phone_change_token", "phone_change_sent_at", "email_change_token_current", "email_change_confirm_status", "banned_until", "reauthentication_token", "reauthentication_sent_at", "is_sso_user", "deleted_at", "is_anonymous") VALUES ('00000000-0000-0000-0000-000000000000', '7cf66202-56e8-4531-a415-dddd2acbbe6c', 'authenticated', 'authenticated', 'alice@example.com', '$2a$10$tvW5gVDoOXyBABvIjLp2IeL9fPWRerxUc2rpK8wfolb3sQ0rPEC5i', '2025-03-14 09:14:05.310472+00', NULL, '', '2025-03-14 09:12:40.121907+00', '', NULL, '', '', NULL, '2025-03-14 09:26:53.584210+00', '{"provider": "email", "providers": ["email"]}', '{"sub": "7cf66202-56e8-4531-a415-dddd2acbbe6c", "email": "alice@example.com", "email_verified": true, "phone_verified": false}', NULL, '2025-03-14 09:12:40.102688+00', '2025-03-14 10:27:02.771485+00', NULL, NULL, '', '', NULL, '', 0, NULL, '', NULL, false, NULL, false);
INSERT INTO "auth"."users" ("instance_id", "id", "aud", "role", "email", "encrypted_password", "email_confirmed_at", "invited_at", "confirmation_token", "confirmation_sent_at", "recovery_token", "recovery_sent_at", "email_change_token_new", "email_change", "email_change_sent_at", "last_sign_in_at", "raw_app_meta_data", "raw_user_meta_data", "is_super_admin", "created_at", "updated_at", "phone", "phone_confirmed_at", "phone_change", "phone_change_token", "phone_change_sent_at", "email_change_token_current", "email_change_confirm_status", "banned_until", "reauthentication_token", "reauthentication_sent_at", "is_sso_user", "deleted_at", "is_anonymous") VALUES ('00000000-0000-0000-0000-000000000000', 'e1d6513b-a56e-4abf-9c9c-2c7f05e48737', 'authenticated', 'authenticated', 'bob@example.com', '$2a$10$bQiPZN6Q./vs3ZAj89tc9.JzdFvzegF5V51DDgTe35vfoJYd/o/DW', NULL, NULL, '0d65cd6e297e98d2c9cfa7c3fa0e2062f34920b06808f4ca19164488', '2025-03-15 18:02:11.204963+00', '', NULL, '', '', NULL, NULL, '{"provider": "email", "providers": ["email"]}', '{"sub": "e1d6513b-a56e-4abf-9c9c-2c7f05e48737", "email": "bob@example.com", "email_verified": false, "phone_verified": false}', NULL, '2025-03-15 18:02:11.198215+00', '2025-03-15 18:02:11.207734+00', NULL, NULL, '', '', NULL, '', 0, NULL, '', NULL, false, NULL, false);

--
-- Data for Name: identities; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

INSERT INTO "auth"."identities" ("provider_id", "user_id", "identity_data", "provider", "last_sign_in_at", "created_at", "updated_at", "id") VALUES ('7cf66202-56e8-4531-a415-dddd2acbbe6c', '7cf66202-56e8-4531-a415-dddd2acbbe6c', '{"sub": "7cf66202-56e8-4531-a415-dddd2acbbe6c", "email": "alice@example.com", "email_verified": true, "phone_verified": false}', 'email', '2025-03-14 09:12:40.114826+00', '2025-03-14 09:12:40.114883+00', '2025-03-14 09:14:05.302118+00', '9a3f6c1e-2b7d-4e85-a0c4-6d1b8e2f7a90');
INSERT INTO "auth"."identities" ("provider_id", "user_id", "identity_data", "provider", "last_sign_in_at", "created_at", "updated_at", "id") VALUES ('e1d6513b-a56e-4abf-9c9c-2c7f05e48737', 'e1d6513b-a56e-4abf-9c9c-2c7f05e48737', '{"sub": "e1d6513b-a56e-4abf-9c9c-2c7f05e48737", "email": "bob@example.com", "email_verified": false, "phone_verified": false}', 'email', '2025-03-15 18:02:11.201542+00', '2025-03-15 18:02:11.201597+00', '2025-03-15 18:02:11.201597+00', 'c58e0d47-81f2-4b39-9e6a-f0d2a4c7b315');

--
-- Data for Name: instances; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: oauth_clients; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: sessions; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

INSERT INTO "auth"."sessions" ("id", "user_id", "created_at", "updated_at", "factor_id", "aal", "not_after", "refreshed_at", "user_agent", "ip", "tag", "oauth_client_id", "refresh_token_hmac_key", "refresh_token_counter", "scopes") VALUES ('4b8bc0e2-c3de-409d-893b-0e299f29ee6a', '7cf66202-56e8-4531-a415-dddd2acbbe6c', '2025-03-14 09:26:53.585011+00', '2025-03-14 10:27:02.779916+00', NULL, 'aal1', NULL, '2025-03-14 10:27:02.779847', 'Mozilla/5.0 (X11; Linux x86_64; rv:136.0) Gecko/20100101 Firefox/136.0', '203.0.113.7', NULL, NULL, NULL, NULL, NULL);

--
-- Data for Name: mfa_amr_claims; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

INSERT INTO "auth"."mfa_amr_claims" ("session_id", "created_at", "updated_at", "authentication_method", "id") VALUES ('4b8bc0e2-c3de-409d-893b-0e299f29ee6a', '2025-03-14 09:26:53.592846+00', '2025-03-14 09:26:53.592846+00', 'password', 'f3b2d9a1-6c4e-4f0b-8d17-2e5a9c3b7f64');

--
-- Data for Name: mfa_factors; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: mfa_challenges; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: oauth_authorizations; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: oauth_client_states; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: oauth_consents; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: one_time_tokens; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

INSERT INTO "auth"."one_time_tokens" ("id", "user_id", "token_type", "token_hash", "relates_to", "created_at", "updated_at") VALUES ('d8e4a7c2-5f1b-4a93-b6e0-3c9f2d8a1b47', 'e1d6513b-a56e-4abf-9c9c-2c7f05e48737', 'confirmation_token', '0d65cd6e297e98d2c9cfa7c3fa0e2062f34920b06808f4ca19164488', 'bob@example.com', '2025-03-15 18:02:11.210485', '2025-03-15 18:02:11.210485');

--
-- Data for Name: refresh_tokens; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

INSERT INTO "auth"."refresh_tokens" ("instance_id", "id", "token", "user_id", "revoked", "created_at", "updated_at", "parent", "session_id") VALUES ('00000000-0000-0000-0000-000000000000', 1, 'q4x7mvb2kd9z', '7cf66202-56e8-4531-a415-dddd2acbbe6c', true, '2025-03-14 09:26:53.587412+00', '2025-03-14 10:27:02.775208+00', NULL, '4b8bc0e2-c3de-409d-893b-0e299f29ee6a');
INSERT INTO "auth"."refresh_tokens" ("instance_id", "id", "token", "user_id", "revoked", "created_at", "updated_at", "parent", "session_id") VALUES ('00000000-0000-0000-0000-000000000000', 2, 'w8n3hj5tcr1p', '7cf66202-56e8-4531-a415-dddd2acbbe6c', false, '2025-03-14 10:27:02.776490+00', '2025-03-14 10:27:02.776490+00', 'q4x7mvb2kd9z', '4b8bc0e2-c3de-409d-893b-0e299f29ee6a');

--
-- Data for Name: sso_providers; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: saml_providers; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: saml_relay_states; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20171026211738');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20171026211808');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20171026211834');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20180103212743');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20180108183307');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20180119214651');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20180125194653');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('00');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20210710035447');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20210722035447');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20210730183235');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20210909172000');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20210927181326');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20211122151130');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20211124214934');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20211202183645');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20220114185221');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20220114185340');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20220224000811');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20220323170000');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20220429102000');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20220531120530');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20220614074223');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20220811173540');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221003041349');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221003041400');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221011041400');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221020193600');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221021073300');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221021082433');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221027105023');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221114143122');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221114143410');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221125140132');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221208132122');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221215195500');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221215195800');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20221215195900');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20230116124310');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20230116124412');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20230131181311');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20230322519590');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20230402418590');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20230411005111');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20230508135423');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20230523124323');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20230818113222');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20230914180801');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20231027141322');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20231114161723');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20231117164230');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20240115144230');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20240214120130');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20240306115329');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20240314092811');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20240427152123');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20240612123726');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20240729123726');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20240802193726');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20240806073726');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20241009103726');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20250717082212');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20250731150234');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20250804100000');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20250901200500');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20250903112500');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20250904133000');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20250925093508');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20251007112900');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20251104100000');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20251111201300');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20251201000000');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20260115000000');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20260121000000');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20260219120000');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20260302000000');
INSERT INTO "auth"."schema_migrations" ("version") VALUES ('20260625000000');

--
-- Data for Name: sso_domains; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: webauthn_challenges; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Data for Name: webauthn_credentials; Type: TABLE DATA; Schema: auth; Owner: supabase_auth_admin
--

--
-- Name: refresh_tokens_id_seq; Type: SEQUENCE SET; Schema: auth; Owner: supabase_auth_admin
--

SELECT pg_catalog.setval('"auth"."refresh_tokens_id_seq"', 2, true);


--
-- PostgreSQL database dump complete
--

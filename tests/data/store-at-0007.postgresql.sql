--
-- PostgreSQL database dump
--

\restrict MFm43ayXKpW6VvLzLiu5RpZzorMd5AP8D9EysjDRE7ToQGIkRbmZmoFakY8eh63

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

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
-- Name: @SCHEMA@; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA @SCHEMA@;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: alembic_version; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.alembic_version (
    version_num character varying(32) NOT NULL
);


--
-- Name: api_tokens; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.api_tokens (
    id character varying(32) NOT NULL,
    name character varying(200) NOT NULL,
    scopes character varying(200) NOT NULL,
    secret_sha256 character varying(64) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone
);


--
-- Name: contexts; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.contexts (
    id integer NOT NULL,
    platform character varying(200) NOT NULL,
    course character varying(200) NOT NULL,
    activity character varying(200) NOT NULL
);


--
-- Name: contexts_id_seq; Type: SEQUENCE; Schema: @SCHEMA@; Owner: -
--

CREATE SEQUENCE @SCHEMA@.contexts_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: contexts_id_seq; Type: SEQUENCE OWNED BY; Schema: @SCHEMA@; Owner: -
--

ALTER SEQUENCE @SCHEMA@.contexts_id_seq OWNED BY @SCHEMA@.contexts.id;


--
-- Name: dead_letters; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.dead_letters (
    id integer NOT NULL,
    item_type character varying(16) NOT NULL,
    item_id character varying(200) NOT NULL,
    entry text NOT NULL,
    reason text NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: dead_letters_id_seq; Type: SEQUENCE; Schema: @SCHEMA@; Owner: -
--

CREATE SEQUENCE @SCHEMA@.dead_letters_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: dead_letters_id_seq; Type: SEQUENCE OWNED BY; Schema: @SCHEMA@; Owner: -
--

ALTER SEQUENCE @SCHEMA@.dead_letters_id_seq OWNED BY @SCHEMA@.dead_letters.id;


--
-- Name: feedback; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.feedback (
    id character varying(128) NOT NULL,
    solve_id character varying(128) NOT NULL,
    kind character varying(16) NOT NULL,
    value jsonb,
    corrected_output jsonb,
    source character varying(50) NOT NULL,
    actor character varying(200),
    voids character varying(128),
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT ck_feedback_kind CHECK (((kind)::text = ANY ((ARRAY['correct'::character varying, 'incorrect'::character varying, 'rating'::character varying, 'correction'::character varying, 'comment'::character varying, 'void'::character varying])::text[])))
);


--
-- Name: installed_packages; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.installed_packages (
    id integer NOT NULL,
    name character varying(200) NOT NULL,
    version character varying(100) NOT NULL,
    digest character varying(80) NOT NULL,
    codec character varying(100) NOT NULL,
    codec_params jsonb NOT NULL,
    source character varying(1000) NOT NULL,
    installed_at timestamp with time zone NOT NULL
);


--
-- Name: installed_packages_id_seq; Type: SEQUENCE; Schema: @SCHEMA@; Owner: -
--

CREATE SEQUENCE @SCHEMA@.installed_packages_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: installed_packages_id_seq; Type: SEQUENCE OWNED BY; Schema: @SCHEMA@; Owner: -
--

ALTER SEQUENCE @SCHEMA@.installed_packages_id_seq OWNED BY @SCHEMA@.installed_packages.id;


--
-- Name: lrs_activities; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.lrs_activities (
    id character varying(2048) NOT NULL,
    definition jsonb
);


--
-- Name: lrs_attachments; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.lrs_attachments (
    sha2 character varying(128) NOT NULL,
    content_type character varying(255) NOT NULL,
    content bytea NOT NULL
);


--
-- Name: lrs_documents; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.lrs_documents (
    pk integer NOT NULL,
    kind character varying(16) NOT NULL,
    activity_id character varying(2048) NOT NULL,
    agent_key character varying(512) NOT NULL,
    registration character varying(36) NOT NULL,
    document_id character varying(2048) NOT NULL,
    content_type character varying(255) NOT NULL,
    content bytea NOT NULL,
    etag character varying(64) NOT NULL,
    updated timestamp with time zone NOT NULL
);


--
-- Name: lrs_documents_pk_seq; Type: SEQUENCE; Schema: @SCHEMA@; Owner: -
--

CREATE SEQUENCE @SCHEMA@.lrs_documents_pk_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: lrs_documents_pk_seq; Type: SEQUENCE OWNED BY; Schema: @SCHEMA@; Owner: -
--

ALTER SEQUENCE @SCHEMA@.lrs_documents_pk_seq OWNED BY @SCHEMA@.lrs_documents.pk;


--
-- Name: lrs_statement_activities; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.lrs_statement_activities (
    statement_seq integer NOT NULL,
    activity_id character varying(2048) NOT NULL,
    related boolean NOT NULL
);


--
-- Name: lrs_statement_agents; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.lrs_statement_agents (
    statement_seq integer NOT NULL,
    agent_key character varying(512) NOT NULL,
    related boolean NOT NULL
);


--
-- Name: lrs_statements; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.lrs_statements (
    seq integer NOT NULL,
    id character varying(36) NOT NULL,
    stored timestamp with time zone NOT NULL,
    verb_id character varying(2048) NOT NULL,
    registration character varying(36),
    voided boolean NOT NULL,
    voiding_target character varying(36),
    ref_target character varying(36),
    statement jsonb NOT NULL,
    signature_sha2 character varying(128)
);


--
-- Name: lrs_statements_seq_seq; Type: SEQUENCE; Schema: @SCHEMA@; Owner: -
--

CREATE SEQUENCE @SCHEMA@.lrs_statements_seq_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: lrs_statements_seq_seq; Type: SEQUENCE OWNED BY; Schema: @SCHEMA@; Owner: -
--

ALTER SEQUENCE @SCHEMA@.lrs_statements_seq_seq OWNED BY @SCHEMA@.lrs_statements.seq;


--
-- Name: lti_launches; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.lti_launches (
    id character varying(64) NOT NULL,
    kind character varying(20) NOT NULL,
    platform_id integer NOT NULL,
    deployment_id character varying(200) NOT NULL,
    context_id character varying(200),
    resource_link_id character varying(200),
    user_id character varying(200) NOT NULL,
    module character varying(200),
    version character varying(100),
    claims json NOT NULL,
    activity json NOT NULL,
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL
);


--
-- Name: lti_nonces; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.lti_nonces (
    platform_id integer NOT NULL,
    nonce character varying(200) NOT NULL,
    used_at timestamp with time zone NOT NULL
);


--
-- Name: lti_platforms; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.lti_platforms (
    id integer NOT NULL,
    issuer character varying(500) NOT NULL,
    client_id character varying(200) NOT NULL,
    deployment_ids json NOT NULL,
    auth_login_url character varying(1000) NOT NULL,
    auth_token_url character varying(1000) NOT NULL,
    jwks_url character varying(1000) NOT NULL,
    name character varying(200) NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: lti_platforms_id_seq; Type: SEQUENCE; Schema: @SCHEMA@; Owner: -
--

CREATE SEQUENCE @SCHEMA@.lti_platforms_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: lti_platforms_id_seq; Type: SEQUENCE OWNED BY; Schema: @SCHEMA@; Owner: -
--

ALTER SEQUENCE @SCHEMA@.lti_platforms_id_seq OWNED BY @SCHEMA@.lti_platforms.id;


--
-- Name: lti_states; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.lti_states (
    state character varying(64) NOT NULL,
    nonce character varying(64) NOT NULL,
    platform_id integer NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: lti_tool_keys; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.lti_tool_keys (
    kid character varying(64) NOT NULL,
    private_pem text NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: routing_state; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.routing_state (
    module character varying(200) NOT NULL,
    revision integer NOT NULL,
    state jsonb NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    updated_by character varying(200) NOT NULL
);


--
-- Name: solves; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.solves (
    id character varying(128) NOT NULL,
    module character varying(200) NOT NULL,
    version character varying(100) NOT NULL,
    digest character varying(80) NOT NULL,
    context_id integer NOT NULL,
    learner character varying(200),
    input jsonb NOT NULL,
    output jsonb,
    steps integer NOT NULL,
    confidence double precision NOT NULL,
    valid boolean,
    latency_ms double precision NOT NULL,
    device character varying(50) NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: xapi_outbox; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.xapi_outbox (
    seq integer NOT NULL,
    statement_id character varying(36) NOT NULL,
    statement jsonb NOT NULL,
    state character varying(8) NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at timestamp with time zone NOT NULL,
    last_error character varying(1000),
    created_at timestamp with time zone NOT NULL
);


--
-- Name: xapi_outbox_seq_seq; Type: SEQUENCE; Schema: @SCHEMA@; Owner: -
--

CREATE SEQUENCE @SCHEMA@.xapi_outbox_seq_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: xapi_outbox_seq_seq; Type: SEQUENCE OWNED BY; Schema: @SCHEMA@; Owner: -
--

ALTER SEQUENCE @SCHEMA@.xapi_outbox_seq_seq OWNED BY @SCHEMA@.xapi_outbox.seq;


--
-- Name: xapi_statements; Type: TABLE; Schema: @SCHEMA@; Owner: -
--

CREATE TABLE @SCHEMA@.xapi_statements (
    id character varying(128) NOT NULL,
    statement jsonb NOT NULL,
    stored_at timestamp with time zone NOT NULL
);


--
-- Name: contexts id; Type: DEFAULT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.contexts ALTER COLUMN id SET DEFAULT nextval('@SCHEMA@.contexts_id_seq'::regclass);


--
-- Name: dead_letters id; Type: DEFAULT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.dead_letters ALTER COLUMN id SET DEFAULT nextval('@SCHEMA@.dead_letters_id_seq'::regclass);


--
-- Name: installed_packages id; Type: DEFAULT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.installed_packages ALTER COLUMN id SET DEFAULT nextval('@SCHEMA@.installed_packages_id_seq'::regclass);


--
-- Name: lrs_documents pk; Type: DEFAULT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lrs_documents ALTER COLUMN pk SET DEFAULT nextval('@SCHEMA@.lrs_documents_pk_seq'::regclass);


--
-- Name: lrs_statements seq; Type: DEFAULT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lrs_statements ALTER COLUMN seq SET DEFAULT nextval('@SCHEMA@.lrs_statements_seq_seq'::regclass);


--
-- Name: lti_platforms id; Type: DEFAULT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lti_platforms ALTER COLUMN id SET DEFAULT nextval('@SCHEMA@.lti_platforms_id_seq'::regclass);


--
-- Name: xapi_outbox seq; Type: DEFAULT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.xapi_outbox ALTER COLUMN seq SET DEFAULT nextval('@SCHEMA@.xapi_outbox_seq_seq'::regclass);


--
-- Data for Name: alembic_version; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.alembic_version VALUES ('0007_routing_state');


--
-- Data for Name: api_tokens; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.api_tokens VALUES ('98564d69599c', 'yesterday', 'admin', 'dacc82416a8bacd08aea8eac4bfd1ad0f4f5623144803cc20d6cf8aca9bf5c7c', '2026-12-05 09:14:06.37333+00', NULL);


--
-- Data for Name: contexts; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.contexts VALUES (1, 'moodle', 'c-1', '');


--
-- Data for Name: dead_letters; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--



--
-- Data for Name: feedback; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.feedback VALUES ('fb-yesterday-1', 'solve-yesterday-1', 'correct', NULL, NULL, 'test', 'pseudo-yesterday', NULL, '2026-12-01 09:00:00+00');


--
-- Data for Name: installed_packages; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--



--
-- Data for Name: lrs_activities; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.lrs_activities VALUES ('https://course.example/act/1', NULL);


--
-- Data for Name: lrs_attachments; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--



--
-- Data for Name: lrs_documents; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.lrs_documents VALUES (1, 'state', 'https://course.example/act/1', 'mbox:mailto:yesterday@example.com', '', 'progress', 'application/json', '\x7b22646f6e65223a20337d', '86704041f97bb28b0bb95c97b47b7e5d3ab0b9b7', '2026-12-05 09:14:06.533206+00');


--
-- Data for Name: lrs_statement_activities; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.lrs_statement_activities VALUES (1, 'https://course.example/act/1', false);


--
-- Data for Name: lrs_statement_agents; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.lrs_statement_agents VALUES (1, 'mbox:mailto:yesterday@example.com', false);
INSERT INTO @SCHEMA@.lrs_statement_agents VALUES (1, 'mbox:mailto:lrs@example.com', true);


--
-- Data for Name: lrs_statements; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.lrs_statements VALUES (1, '0a1e2d3c-0000-4000-8000-000000000007', '2026-12-05 09:14:06.465378+00', 'http://adlnet.gov/expapi/verbs/answered', NULL, false, NULL, NULL, '{"id": "0a1e2d3c-0000-4000-8000-000000000007", "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"}, "actor": {"mbox": "mailto:yesterday@example.com", "objectType": "Agent"}, "object": {"id": "https://course.example/act/1", "objectType": "Activity"}, "stored": "2026-12-05T09:14:06.465378Z", "version": "1.0.0", "authority": {"mbox": "mailto:lrs@example.com", "objectType": "Agent"}, "timestamp": "2026-12-05T09:14:06.465378Z"}', NULL);


--
-- Data for Name: lti_launches; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.lti_launches VALUES ('77ZUzTx1EhSSKO41z_h7w-vdhg90ikrVKFhCy0B3g0o', 'resource', 1, '', NULL, NULL, 'lti-user-yesterday', 'sudoku-4x4', '1.0.0', '{"sub":"lti-user-yesterday"}', '{}', '2026-12-05 09:14:06.693546+00', '2026-12-05 17:14:06.693553+00');


--
-- Data for Name: lti_nonces; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--



--
-- Data for Name: lti_platforms; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.lti_platforms VALUES (1, 'https://moodle.example', 'client-1', '["d1"]', 'https://moodle.example/auth', 'https://moodle.example/token', 'https://moodle.example/jwks', 'https://moodle.example', '2026-12-05 09:14:06.630869+00');


--
-- Data for Name: lti_states; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--



--
-- Data for Name: lti_tool_keys; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.lti_tool_keys VALUES ('899d18e604fd6213', '-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDHNSfyS4Vq6JKZ
lhUCtxBsw1Ch8z1Xk5714m3mf6d0vpqJIGUzUYoeQpbpTq464U9/lBZ1vmhVrzav
kTwQB/tXUlVMPEEVidcCn2o77DAMb5TljcCSvyB6GDZd3Ag2Js78eJLDgJ6srP+I
RoezBJFIjA0KyoZ7kRH8FpMUit/31Hx8OUhV7WsoaG0HFiOpz3SmZZ7PLExjMUjY
lpzwPkqrd7LODxwfU2W0RGnTjn6aGxi9Yyexmf0JCaFVzlqvQXDFLAOFpmEFQyoE
+dyTWoQXofxD8n80yHpAERc4W/2lOpYnK7klRs0HdkRTUiBA7ZzNxXwt1fzurUNS
kHwXJPONAgMBAAECggEATCTe3IgOetNkOe26oTuNPS2ZFBZQQ7nrAGyo+nqf7Qlw
M2sdE7UeuLtWSN6ozVvTEd5uiVobMmlTW1+F2FDcuz9+2DGN5Sg3dcquhjIdGZvL
C8WXrt/8j37SxSS2RNCnvKxv2OfAfxtvX00qUHy19ceGsrHAHtpQSA3u8WK2Alna
LyVh/nrmYAhQfqW/BDZtxfYoq7jGNHbnjTSUCDM7jGEVFJPrCTAmOoUvXLSqll6u
Aa6RcVDoQIevgroUo91ek4gc6GtfGHL6nbXgpnifi4KeH9alNrBo52GtnMHA2xmd
2Oqk/FyDImsBkc82FzSnB8vKFVBl+kYBzvpTioxsFwKBgQD5b4XLKrhq8+s3y12j
OKWpUmN1qXoZ2QjncM454hJFtDOjBpyyiG7ZLJU7QHeR7xEHRGJ7atKa45BArWU+
RwdtHpFB+SChami+RPbiISIlDzYMnPO4SQR83yeJd3aitfVLDRHsn5cljiR0WPgu
IphdFn//Bx+w3SDrqPCdY4U+WwKBgQDMcz3RFNFII8ibKAvFwVhK3zjqKVWxSwQt
og1de6OVVWZvUsXFRXPsGYaPqijSGPDP988Kl5RoldDvxUeC1hhGkXLRxZWhEkAT
yPVwZ5bap7Q3XfrzCNVSIorxZzJnJKbaXeVlIgbphwW1gGAWsHZTl9QM1ZX+8khB
UCHYOU8KNwKBgGk4sFn6FX2Yk7sfoMp/1PJOfQJfkdBhi64GGhi00zxwPfAhk+yE
PS6D7hfmpAn9rVNBd8HUWC9am7mM686PrAROBryr2SX+e1z4PqU5kOvNNOGxO+ab
drcuc8E7keIlm+ojA1KsJ9iB08L43QipM1jhavEsEiRLw91lkMrz9ntNAoGAOVRD
TEKjILBwCxnimzRJFs2bPwYSMmHPrSAY0VLfHvvQenziWhvMkrLhqZ1UTv2RYS+i
zdyNT/pamTFfiQ+RxQ/5+1qFR6I/d4zNThSuF2gZP8FJoiai8qIfBewjFQsRAoB7
16z/9THYZvm1eAdJVs1nN6YYpmG34yCeLOx8/mcCgYAqw5uPFy9H4XwGLJTCOHj1
/RVzP0E31X5Ce55mdNQJfCq6Tf1v2ZuPAIsJuFS12Ao9AcWzy/KcwYPITGEW6bpc
+hqYwq5ZT4NodVdWu+9s4yA9jujywTIa0zFkS9EoonhelQOvBGTwqoB2HJAMq5x7
KZCh+ZvTYMwKiYqxhc2f/Q==
-----END PRIVATE KEY-----
', '2026-12-05 09:14:07.06928+00');


--
-- Data for Name: routing_state; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--



--
-- Data for Name: solves; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.solves VALUES ('solve-yesterday-1', 'sudoku-4x4', '1.0.0', 'sha256:0000000000000000000000000000000000000000000000000000000000000000', 1, 'pseudo-yesterday', '{"grid": [[0]]}', '{"grid": [[1]]}', 3, 0.9, true, 4, 'cpu', '2026-12-01 09:00:00+00');


--
-- Data for Name: xapi_outbox; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.xapi_outbox VALUES (1, '0a1e2d3c-0000-4000-8000-000000000007', '{"id": "0a1e2d3c-0000-4000-8000-000000000007", "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"}, "actor": {"mbox": "mailto:yesterday@example.com", "objectType": "Agent"}, "object": {"id": "https://course.example/act/1", "objectType": "Activity"}}', 'pending', 0, '2026-12-05 09:14:06.581219+00', NULL, '2026-12-05 09:14:06.581219+00');


--
-- Data for Name: xapi_statements; Type: TABLE DATA; Schema: @SCHEMA@; Owner: -
--

INSERT INTO @SCHEMA@.xapi_statements VALUES ('0a1e2d3c-0000-4000-8000-000000000007', '{"id": "0a1e2d3c-0000-4000-8000-000000000007", "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"}, "actor": {"mbox": "mailto:yesterday@example.com", "objectType": "Agent"}, "object": {"id": "https://course.example/act/1", "objectType": "Activity"}}', '2026-12-05 09:14:06.29948+00');


--
-- Name: contexts_id_seq; Type: SEQUENCE SET; Schema: @SCHEMA@; Owner: -
--

SELECT pg_catalog.setval('@SCHEMA@.contexts_id_seq', 1, true);


--
-- Name: dead_letters_id_seq; Type: SEQUENCE SET; Schema: @SCHEMA@; Owner: -
--

SELECT pg_catalog.setval('@SCHEMA@.dead_letters_id_seq', 1, false);


--
-- Name: installed_packages_id_seq; Type: SEQUENCE SET; Schema: @SCHEMA@; Owner: -
--

SELECT pg_catalog.setval('@SCHEMA@.installed_packages_id_seq', 1, false);


--
-- Name: lrs_documents_pk_seq; Type: SEQUENCE SET; Schema: @SCHEMA@; Owner: -
--

SELECT pg_catalog.setval('@SCHEMA@.lrs_documents_pk_seq', 1, true);


--
-- Name: lrs_statements_seq_seq; Type: SEQUENCE SET; Schema: @SCHEMA@; Owner: -
--

SELECT pg_catalog.setval('@SCHEMA@.lrs_statements_seq_seq', 1, true);


--
-- Name: lti_platforms_id_seq; Type: SEQUENCE SET; Schema: @SCHEMA@; Owner: -
--

SELECT pg_catalog.setval('@SCHEMA@.lti_platforms_id_seq', 1, true);


--
-- Name: xapi_outbox_seq_seq; Type: SEQUENCE SET; Schema: @SCHEMA@; Owner: -
--

SELECT pg_catalog.setval('@SCHEMA@.xapi_outbox_seq_seq', 1, true);


--
-- Name: alembic_version alembic_version_pkc; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.alembic_version
    ADD CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num);


--
-- Name: api_tokens api_tokens_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.api_tokens
    ADD CONSTRAINT api_tokens_pkey PRIMARY KEY (id);


--
-- Name: contexts contexts_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.contexts
    ADD CONSTRAINT contexts_pkey PRIMARY KEY (id);


--
-- Name: dead_letters dead_letters_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.dead_letters
    ADD CONSTRAINT dead_letters_pkey PRIMARY KEY (id);


--
-- Name: feedback feedback_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.feedback
    ADD CONSTRAINT feedback_pkey PRIMARY KEY (id);


--
-- Name: installed_packages installed_packages_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.installed_packages
    ADD CONSTRAINT installed_packages_pkey PRIMARY KEY (id);


--
-- Name: lrs_activities lrs_activities_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lrs_activities
    ADD CONSTRAINT lrs_activities_pkey PRIMARY KEY (id);


--
-- Name: lrs_attachments lrs_attachments_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lrs_attachments
    ADD CONSTRAINT lrs_attachments_pkey PRIMARY KEY (sha2);


--
-- Name: lrs_documents lrs_documents_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lrs_documents
    ADD CONSTRAINT lrs_documents_pkey PRIMARY KEY (pk);


--
-- Name: lrs_statements lrs_statements_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lrs_statements
    ADD CONSTRAINT lrs_statements_pkey PRIMARY KEY (seq);


--
-- Name: lti_launches lti_launches_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lti_launches
    ADD CONSTRAINT lti_launches_pkey PRIMARY KEY (id);


--
-- Name: lti_nonces lti_nonces_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lti_nonces
    ADD CONSTRAINT lti_nonces_pkey PRIMARY KEY (platform_id, nonce);


--
-- Name: lti_platforms lti_platforms_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lti_platforms
    ADD CONSTRAINT lti_platforms_pkey PRIMARY KEY (id);


--
-- Name: lti_states lti_states_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lti_states
    ADD CONSTRAINT lti_states_pkey PRIMARY KEY (state);


--
-- Name: lti_tool_keys lti_tool_keys_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lti_tool_keys
    ADD CONSTRAINT lti_tool_keys_pkey PRIMARY KEY (kid);


--
-- Name: routing_state routing_state_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.routing_state
    ADD CONSTRAINT routing_state_pkey PRIMARY KEY (module);


--
-- Name: solves solves_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.solves
    ADD CONSTRAINT solves_pkey PRIMARY KEY (id);


--
-- Name: api_tokens uq_api_tokens_secret_sha256; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.api_tokens
    ADD CONSTRAINT uq_api_tokens_secret_sha256 UNIQUE (secret_sha256);


--
-- Name: contexts uq_contexts_platform_course_activity; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.contexts
    ADD CONSTRAINT uq_contexts_platform_course_activity UNIQUE (platform, course, activity);


--
-- Name: installed_packages uq_installed_packages_name_version_digest; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.installed_packages
    ADD CONSTRAINT uq_installed_packages_name_version_digest UNIQUE (name, version, digest);


--
-- Name: lrs_documents uq_lrs_documents_key; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lrs_documents
    ADD CONSTRAINT uq_lrs_documents_key UNIQUE (kind, activity_id, agent_key, registration, document_id);


--
-- Name: lrs_statements uq_lrs_statements_id; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lrs_statements
    ADD CONSTRAINT uq_lrs_statements_id UNIQUE (id);


--
-- Name: lti_platforms uq_lti_platforms_issuer_client; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lti_platforms
    ADD CONSTRAINT uq_lti_platforms_issuer_client UNIQUE (issuer, client_id);


--
-- Name: xapi_outbox xapi_outbox_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.xapi_outbox
    ADD CONSTRAINT xapi_outbox_pkey PRIMARY KEY (seq);


--
-- Name: xapi_statements xapi_statements_pkey; Type: CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.xapi_statements
    ADD CONSTRAINT xapi_statements_pkey PRIMARY KEY (id);


--
-- Name: ix_dead_letters_created_at; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_dead_letters_created_at ON @SCHEMA@.dead_letters USING btree (created_at);


--
-- Name: ix_feedback_solve_id; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_feedback_solve_id ON @SCHEMA@.feedback USING btree (solve_id);


--
-- Name: ix_feedback_voids; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_feedback_voids ON @SCHEMA@.feedback USING btree (voids);


--
-- Name: ix_installed_packages_name; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_installed_packages_name ON @SCHEMA@.installed_packages USING btree (name);


--
-- Name: ix_lrs_statement_activities_id; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_lrs_statement_activities_id ON @SCHEMA@.lrs_statement_activities USING btree (activity_id, statement_seq);


--
-- Name: ix_lrs_statement_agents_key; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_lrs_statement_agents_key ON @SCHEMA@.lrs_statement_agents USING btree (agent_key, statement_seq);


--
-- Name: ix_lrs_statements_ref_target; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_lrs_statements_ref_target ON @SCHEMA@.lrs_statements USING btree (ref_target);


--
-- Name: ix_lrs_statements_registration; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_lrs_statements_registration ON @SCHEMA@.lrs_statements USING btree (registration);


--
-- Name: ix_lrs_statements_stored; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_lrs_statements_stored ON @SCHEMA@.lrs_statements USING btree (stored);


--
-- Name: ix_lrs_statements_verb_id; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_lrs_statements_verb_id ON @SCHEMA@.lrs_statements USING btree (verb_id);


--
-- Name: ix_solves_context_id; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_solves_context_id ON @SCHEMA@.solves USING btree (context_id);


--
-- Name: ix_solves_module_created_at; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_solves_module_created_at ON @SCHEMA@.solves USING btree (module, created_at);


--
-- Name: ix_xapi_outbox_due; Type: INDEX; Schema: @SCHEMA@; Owner: -
--

CREATE INDEX ix_xapi_outbox_due ON @SCHEMA@.xapi_outbox USING btree (state, next_attempt_at, seq);


--
-- Name: feedback fk_feedback_voids; Type: FK CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.feedback
    ADD CONSTRAINT fk_feedback_voids FOREIGN KEY (voids) REFERENCES @SCHEMA@.feedback(id);


--
-- Name: lrs_statement_activities fk_lrs_statement_activities_seq; Type: FK CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lrs_statement_activities
    ADD CONSTRAINT fk_lrs_statement_activities_seq FOREIGN KEY (statement_seq) REFERENCES @SCHEMA@.lrs_statements(seq);


--
-- Name: lrs_statement_agents fk_lrs_statement_agents_seq; Type: FK CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.lrs_statement_agents
    ADD CONSTRAINT fk_lrs_statement_agents_seq FOREIGN KEY (statement_seq) REFERENCES @SCHEMA@.lrs_statements(seq);


--
-- Name: solves fk_solves_context_id; Type: FK CONSTRAINT; Schema: @SCHEMA@; Owner: -
--

ALTER TABLE ONLY @SCHEMA@.solves
    ADD CONSTRAINT fk_solves_context_id FOREIGN KEY (context_id) REFERENCES @SCHEMA@.contexts(id);


--
-- PostgreSQL database dump complete
--

\unrestrict MFm43ayXKpW6VvLzLiu5RpZzorMd5AP8D9EysjDRE7ToQGIkRbmZmoFakY8eh63


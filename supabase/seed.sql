-- Local seed: the demo user whose JWT `./x stack env` prints as DEMO_USER_JWT.
insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
values ('00000000-0000-4000-8000-00000000d3e0', 'authenticated', 'authenticated',
        'demo@spots.local', '{"provider":"email"}', '{}')
on conflict (id) do nothing;

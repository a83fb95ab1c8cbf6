//! One conformance suite for the accounts port, run against the in-memory adapter and
//! PostgreSQL (the stand-in from `infra/standins`).

use std::sync::Arc;

use celeriac_shop::accounts::postgres::PgAccounts;
use celeriac_shop::accounts::secrets::Token;
use celeriac_shop::accounts::{
    AccountError, MemoryAccounts, NewUser, Refresh, SharedAccounts, TokenKind,
};
use chrono::{Duration, Utc};
use uuid::Uuid;

async fn postgres() -> Option<SharedAccounts> {
    let pool = celeriac_db::connect(&celeriac_testkit::database()?)
        .await
        .expect("connect");
    celeriac_db::migrate(&pool).await.expect("migrate");
    Some(Arc::new(PgAccounts::new(pool)))
}

/// A fresh address per test and run: the PostgreSQL stand-in is shared.
fn email(name: &str) -> String {
    format!("{name}-{}@example.test", Uuid::new_v4().simple())
}

fn new_user(email: &str) -> NewUser {
    with_hash(email, "$argon2id$placeholder")
}

fn with_hash(email: &str, password_hash: &str) -> NewUser {
    NewUser {
        email: email.to_owned(),
        name: "Tea Lover".into(),
        password_hash: password_hash.into(),
        pending_until: in_an_hour(),
    }
}

fn in_an_hour() -> chrono::DateTime<Utc> {
    Utc::now() + Duration::hours(1)
}

/// A user who registered and used the link.
async fn confirmed_user(store: &SharedAccounts, address: &str) -> celeriac_shop::accounts::User {
    let user = store.create_user(new_user(address)).await.expect("create");
    let token = Token::generate();
    assert!(
        store
            .put_email_token(
                &token.digest(),
                user.id,
                TokenKind::Registration,
                in_an_hour()
            )
            .await
            .expect("put")
    );
    store
        .redeem_email_token(&token.digest())
        .await
        .expect("redeem")
        .expect("valid")
}

async fn password_hash_of(store: &SharedAccounts, address: &str) -> Option<String> {
    store
        .user_by_email(address)
        .await
        .expect("by email")
        .map(|(_, hash)| hash)
}

async fn users_are_unique_by_email(store: SharedAccounts) {
    let address = email("unique");
    let user = confirmed_user(&store, &address).await;
    assert_eq!(user.email, address);
    assert!(user.confirmed_at.is_some());
    let again = store.create_user(new_user(&address)).await;
    assert!(matches!(again, Err(AccountError::EmailTaken)), "{again:?}");
    let (found, hash) = store
        .user_by_email(&address)
        .await
        .expect("by email")
        .expect("found");
    assert_eq!(found, user);
    assert_eq!(hash, "$argon2id$placeholder");
    assert_eq!(
        store.user_by_id(user.id).await.expect("by id"),
        Some(user.clone())
    );
    assert_eq!(
        store
            .user_by_email(&email("nobody"))
            .await
            .expect("by email"),
        None
    );
}

async fn only_unconfirmed_users_can_be_undone(store: SharedAccounts) {
    let pending = store
        .create_user(new_user(&email("undo")))
        .await
        .expect("create");
    assert!(
        store
            .delete_unconfirmed_user(pending.id)
            .await
            .expect("undo")
    );
    assert_eq!(store.user_by_id(pending.id).await.expect("get"), None);
    store
        .create_user(new_user(&pending.email))
        .await
        .expect("the address is free again");

    let confirmed = store
        .create_user(new_user(&email("kept")))
        .await
        .expect("create");
    let token = Token::generate();
    store
        .put_email_token(
            &token.digest(),
            confirmed.id,
            TokenKind::Registration,
            in_an_hour(),
        )
        .await
        .expect("put");
    store
        .redeem_email_token(&token.digest())
        .await
        .expect("redeem")
        .expect("valid");
    assert!(
        !store
            .delete_unconfirmed_user(confirmed.id)
            .await
            .expect("undo")
    );
    assert!(store.user_by_id(confirmed.id).await.expect("get").is_some());
}

async fn registering_a_pending_address_again_replaces_it_and_kills_its_link(store: SharedAccounts) {
    let address = email("squatted");
    let squatter = store
        .create_user(with_hash(&address, "squatter's"))
        .await
        .expect("create");
    let squatter_link = Token::generate();
    assert!(
        store
            .put_email_token(
                &squatter_link.digest(),
                squatter.id,
                TokenKind::Registration,
                in_an_hour()
            )
            .await
            .expect("put")
    );
    let owner = store
        .create_user(with_hash(&address, "owner's"))
        .await
        .expect("a pending address can be registered again");
    assert_ne!(owner.id, squatter.id);
    assert_eq!(store.user_by_id(squatter.id).await.expect("get"), None);
    assert_eq!(
        password_hash_of(&store, &address).await.as_deref(),
        Some("owner's")
    );
    assert_eq!(
        store
            .redeem_email_token(&squatter_link.digest())
            .await
            .expect("redeem"),
        None,
        "the replaced account's link is dead"
    );
    let owner_link = Token::generate();
    store
        .put_email_token(
            &owner_link.digest(),
            owner.id,
            TokenKind::Registration,
            in_an_hour(),
        )
        .await
        .expect("put");
    let confirmed = store
        .redeem_email_token(&owner_link.digest())
        .await
        .expect("redeem")
        .expect("the new link confirms");
    assert_eq!(confirmed.id, owner.id);
    assert_eq!(
        password_hash_of(&store, &address).await.as_deref(),
        Some("owner's")
    );
}

async fn an_expired_pending_user_holds_nothing(store: SharedAccounts) {
    let address = email("expired");
    let expired = store
        .create_user(NewUser {
            pending_until: Utc::now() - Duration::seconds(1),
            ..new_user(&address)
        })
        .await
        .expect("create");
    assert_eq!(
        store.user_by_email(&address).await.expect("by email"),
        None,
        "cannot log in"
    );
    assert!(
        !store
            .put_email_token(
                &Token::generate().digest(),
                expired.id,
                TokenKind::Registration,
                in_an_hour()
            )
            .await
            .expect("put"),
        "no new link revives it"
    );
    let owner = store
        .create_user(new_user(&address))
        .await
        .expect("the address is free");
    assert_eq!(
        store
            .user_by_email(&address)
            .await
            .expect("by email")
            .map(|(user, _)| user.id),
        Some(owner.id)
    );
}

async fn a_new_link_kills_the_earlier_one_of_its_kind(store: SharedAccounts) {
    let user = confirmed_user(&store, &email("links")).await;
    let first = Token::generate();
    let second = Token::generate();
    let reset = Token::generate();
    for (token, kind) in [
        (&reset, TokenKind::PasswordReset),
        (
            &first,
            TokenKind::EmailChange {
                new_email: email("first"),
            },
        ),
        (
            &second,
            TokenKind::EmailChange {
                new_email: email("second"),
            },
        ),
    ] {
        assert!(
            store
                .put_email_token(&token.digest(), user.id, kind, in_an_hour())
                .await
                .expect("put")
        );
    }
    assert_eq!(
        store
            .redeem_email_token(&first.digest())
            .await
            .expect("redeem"),
        None
    );
    assert!(
        store
            .redeem_email_token(&second.digest())
            .await
            .expect("redeem")
            .is_some()
    );
    assert!(
        store
            .reset_password(&reset.digest(), "other kind untouched".into())
            .await
            .expect("reset")
            .is_some()
    );
}

async fn a_password_reset_works_once_and_revokes_refresh_tokens(store: SharedAccounts) {
    let address = email("reset");
    let user = confirmed_user(&store, &address).await;
    let refresh = Token::generate();
    store
        .put_refresh_token(&refresh.digest(), Uuid::new_v4(), user.id, in_an_hour())
        .await
        .expect("put");
    let reset = Token::generate();
    store
        .put_email_token(
            &reset.digest(),
            user.id,
            TokenKind::PasswordReset,
            in_an_hour(),
        )
        .await
        .expect("put");
    assert_eq!(
        store
            .redeem_email_token(&reset.digest())
            .await
            .expect("redeem"),
        None,
        "a reset token confirms nothing"
    );
    let done = store
        .reset_password(&reset.digest(), "new hash".into())
        .await
        .expect("reset")
        .expect("valid");
    assert_eq!(done.id, user.id);
    assert_eq!(
        password_hash_of(&store, &address).await.as_deref(),
        Some("new hash")
    );
    assert_eq!(
        store
            .reset_password(&reset.digest(), "again".into())
            .await
            .expect("again"),
        None,
        "single use"
    );
    assert_eq!(
        password_hash_of(&store, &address).await.as_deref(),
        Some("new hash")
    );
    assert_eq!(
        store
            .rotate_refresh_token(&refresh.digest(), &Token::generate().digest(), in_an_hour())
            .await
            .expect("rotate"),
        Refresh::Invalid,
        "refresh tokens from before the reset are revoked"
    );

    let registration = Token::generate();
    let pending = store
        .create_user(new_user(&email("reset-pending")))
        .await
        .expect("create");
    store
        .put_email_token(
            &registration.digest(),
            pending.id,
            TokenKind::Registration,
            in_an_hour(),
        )
        .await
        .expect("put");
    assert_eq!(
        store
            .reset_password(&registration.digest(), "x".into())
            .await
            .expect("reset"),
        None,
        "a registration token resets nothing"
    );
    let stale = Token::generate();
    store
        .put_email_token(
            &stale.digest(),
            user.id,
            TokenKind::PasswordReset,
            Utc::now() - Duration::seconds(1),
        )
        .await
        .expect("put");
    assert_eq!(
        store
            .reset_password(&stale.digest(), "x".into())
            .await
            .expect("stale"),
        None
    );
}

async fn a_confirmation_token_works_once(store: SharedAccounts) {
    let user = store
        .create_user(new_user(&email("confirm")))
        .await
        .expect("create");
    let token = Token::generate();
    store
        .put_email_token(
            &token.digest(),
            user.id,
            TokenKind::Registration,
            in_an_hour(),
        )
        .await
        .expect("put");
    let confirmed = store
        .redeem_email_token(&token.digest())
        .await
        .expect("redeem")
        .expect("valid");
    assert!(confirmed.confirmed_at.is_some());
    assert_eq!(
        store
            .redeem_email_token(&token.digest())
            .await
            .expect("again"),
        None,
        "a used token is spent"
    );
    assert!(
        !store
            .put_email_token(
                &Token::generate().digest(),
                user.id,
                TokenKind::Registration,
                in_an_hour()
            )
            .await
            .expect("put"),
        "a confirmed user gets no registration link"
    );
    let stale = Token::generate();
    store
        .put_email_token(
            &stale.digest(),
            user.id,
            TokenKind::EmailChange {
                new_email: email("stale"),
            },
            Utc::now() - Duration::seconds(1),
        )
        .await
        .expect("put");
    assert_eq!(
        store
            .redeem_email_token(&stale.digest())
            .await
            .expect("stale"),
        None
    );
    assert_eq!(
        store
            .redeem_email_token(&Token::generate().digest())
            .await
            .expect("unknown"),
        None
    );
}

async fn an_email_change_applies_on_confirmation_unless_taken(store: SharedAccounts) {
    let user = confirmed_user(&store, &email("old")).await;
    let new_address = email("new");
    let change = Token::generate();
    store
        .put_email_token(
            &change.digest(),
            user.id,
            TokenKind::EmailChange {
                new_email: new_address.clone(),
            },
            in_an_hour(),
        )
        .await
        .expect("put");
    assert_eq!(
        store
            .user_by_id(user.id)
            .await
            .expect("get")
            .expect("user")
            .email,
        user.email,
        "nothing changes before confirmation"
    );
    let changed = store
        .redeem_email_token(&change.digest())
        .await
        .expect("redeem")
        .expect("valid");
    assert_eq!(changed.email, new_address);

    // Another account wants the address, now confirmed: refused, and the token stays
    // usable should that account go away.
    let other = confirmed_user(&store, &email("other")).await;
    let contested = Token::generate();
    store
        .put_email_token(
            &contested.digest(),
            other.id,
            TokenKind::EmailChange {
                new_email: new_address.clone(),
            },
            in_an_hour(),
        )
        .await
        .expect("put");
    let taken = store.redeem_email_token(&contested.digest()).await;
    assert!(matches!(taken, Err(AccountError::EmailTaken)), "{taken:?}");
    assert_ne!(
        store
            .user_by_id(other.id)
            .await
            .expect("get")
            .expect("user")
            .email,
        new_address
    );

    // A pending registration of the target address yields to the confirmed change.
    let wanted = email("wanted");
    let squatter = store.create_user(new_user(&wanted)).await.expect("create");
    let change = Token::generate();
    store
        .put_email_token(
            &change.digest(),
            other.id,
            TokenKind::EmailChange {
                new_email: wanted.clone(),
            },
            in_an_hour(),
        )
        .await
        .expect("put");
    let changed = store
        .redeem_email_token(&change.digest())
        .await
        .expect("redeem")
        .expect("valid");
    assert_eq!(changed.email, wanted);
    assert_eq!(store.user_by_id(squatter.id).await.expect("get"), None);
}

async fn refresh_tokens_rotate_and_a_reuse_revokes_the_family(store: SharedAccounts) {
    let user = store
        .create_user(new_user(&email("refresh")))
        .await
        .expect("create");
    let family = Uuid::new_v4();
    let first = Token::generate();
    store
        .put_refresh_token(&first.digest(), family, user.id, in_an_hour())
        .await
        .expect("put");
    let second = Token::generate();
    assert_eq!(
        store
            .rotate_refresh_token(&first.digest(), &second.digest(), in_an_hour())
            .await
            .expect("rotate"),
        Refresh::Rotated { user_id: user.id }
    );
    // The first token is replayed (stolen): the family dies, including the current token.
    let third = Token::generate();
    assert_eq!(
        store
            .rotate_refresh_token(&first.digest(), &third.digest(), in_an_hour())
            .await
            .expect("replay"),
        Refresh::Reused { user_id: user.id }
    );
    assert_eq!(
        store
            .rotate_refresh_token(&second.digest(), &third.digest(), in_an_hour())
            .await
            .expect("current after replay"),
        Refresh::Invalid
    );
    assert_eq!(
        store
            .rotate_refresh_token(&Token::generate().digest(), &third.digest(), in_an_hour())
            .await
            .expect("unknown"),
        Refresh::Invalid
    );
}

async fn concurrent_uses_of_one_refresh_token_rotate_once(store: SharedAccounts) {
    let user = store
        .create_user(new_user(&email("race")))
        .await
        .expect("create");
    let token = Token::generate();
    store
        .put_refresh_token(&token.digest(), Uuid::new_v4(), user.id, in_an_hour())
        .await
        .expect("put");
    let uses = (0..8).map(|_| {
        let store = store.clone();
        let digest = token.digest();
        async move {
            store
                .rotate_refresh_token(&digest, &Token::generate().digest(), in_an_hour())
                .await
                .expect("rotate")
        }
    });
    let outcomes = futures::future::join_all(uses).await;
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, Refresh::Rotated { .. }))
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
}

async fn logout_revokes_the_family(store: SharedAccounts) {
    let user = store
        .create_user(new_user(&email("logout")))
        .await
        .expect("create");
    let token = Token::generate();
    store
        .put_refresh_token(&token.digest(), Uuid::new_v4(), user.id, in_an_hour())
        .await
        .expect("put");
    assert!(
        store
            .revoke_refresh_family(&token.digest())
            .await
            .expect("revoke")
    );
    assert_eq!(
        store
            .rotate_refresh_token(&token.digest(), &Token::generate().digest(), in_an_hour())
            .await
            .expect("after logout"),
        Refresh::Invalid
    );
    assert!(
        !store
            .revoke_refresh_family(&Token::generate().digest())
            .await
            .expect("unknown")
    );
}

macro_rules! conformance {
    ($($adapter:ident => $open:expr;)*) => {$(
        mod $adapter {
            use super::*;
            async fn store() -> Option<SharedAccounts> { $open }
            conformance!(@cases
                users_are_unique_by_email,
                registering_a_pending_address_again_replaces_it_and_kills_its_link,
                an_expired_pending_user_holds_nothing,
                a_new_link_kills_the_earlier_one_of_its_kind,
                a_password_reset_works_once_and_revokes_refresh_tokens,
                only_unconfirmed_users_can_be_undone,
                a_confirmation_token_works_once,
                an_email_change_applies_on_confirmation_unless_taken,
                refresh_tokens_rotate_and_a_reuse_revokes_the_family,
                concurrent_uses_of_one_refresh_token_rotate_once,
                logout_revokes_the_family);
        }
    )*};
    (@cases $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(store) = store().await else { return };
            super::$case(store).await;
        }
    )*};
}

conformance! {
    memory => Some(Arc::new(MemoryAccounts::new()) as SharedAccounts);
    postgres => postgres().await;
}

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
    NewUser {
        email: email.to_owned(),
        name: "Tea Lover".into(),
        password_hash: "$argon2id$placeholder".into(),
    }
}

fn in_an_hour() -> chrono::DateTime<Utc> {
    Utc::now() + Duration::hours(1)
}

async fn users_are_unique_by_email(store: SharedAccounts) {
    let address = email("unique");
    let user = store.create_user(new_user(&address)).await.expect("create");
    assert_eq!(user.email, address);
    assert_eq!(user.confirmed_at, None);
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
    let stale = Token::generate();
    store
        .put_email_token(
            &stale.digest(),
            user.id,
            TokenKind::Registration,
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
    let user = store
        .create_user(new_user(&email("old")))
        .await
        .expect("create");
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

    // Someone else registers the target address before the confirmation: refused, and
    // the token stays usable should that account go away.
    let other = store
        .create_user(new_user(&email("other")))
        .await
        .expect("create");
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

//! `batch_input`: every item answered in order, each its result or its
//! `error`, with the caller's `reference` echoed; when an item failed the
//! answer is 400 (or `partial_failure_response_code` when some
//! succeeded), as Vault's. An item whose base64 is bad fails alone; a
//! batch that is not a list of objects, or an item without its ciphertext
//! or plaintext, is refused whole (400; OpenBao answers 500 there).

use std::future::Future;

use http::StatusCode;
use serde_json::{Value, json};

use super::fields::{Fields, decode};
use super::{check, missing_is_400};
use crate::access::Session;
use crate::api::gate::Call;
use crate::api::http::{Outcome, Reply};
use crate::audit::Field;
use crate::engines::keys::Keys;
use crate::error::Error;

/// One batch item as read: its reference, and its input or its own error.
pub(super) struct Item<T> {
    reference: String,
    pub(super) input: Result<(T, Vec<u8>), String>,
}

impl<T> Item<T> {
    /// Whether the item was read with a context.
    pub(super) fn has_context(&self) -> bool {
        self.input.as_ref().is_ok_and(|(_, c)| !c.is_empty())
    }
}

/// Runs batch `call` (encrypt, decrypt or rewrap): refused at the gate
/// unless every item was read and the batch is within the engine's limit,
/// else the items read go to `engine` in one go, and the answer holds
/// every item's `ok` or `error` in order.
pub(super) async fn run<T: Clone, R, Fut>(
    call: Call<'_>,
    fields: &Fields,
    items: Result<Vec<Item<T>>, Error>,
    engine: impl FnOnce(Session, Vec<(T, Vec<u8>)>) -> Fut,
    ok: impl Fn(R) -> Value,
    error: impl Fn(String) -> Value,
) -> Outcome
where
    Fut: Future<Output = Result<Vec<Result<R, String>>, Error>>,
{
    let count = items.as_ref().map_or(0, Vec::len);
    let (answers, failed) = call
        .plain("items", count)
        .check(check(&items))
        .check(Keys::check_batch(count))
        .run(
            |session| async move {
                let items = items?;
                let results = engine(session, valid(&items)).await?;
                Ok(merge(&items, results, ok, error))
            },
            failed_items,
        )
        .await
        .map_err(missing_is_400)?;
    batch_reply(fields, answers, failed)
}

/// The items of `batch_input`, each with `input` read from it (a field
/// missing or of the wrong type refuses the whole batch; bad base64 fails
/// the item). Contexts are given in every item or in none, as Vault asks.
pub(super) fn items<T>(
    batch: Vec<Fields>,
    input: impl Fn(&Fields) -> Result<Result<T, String>, Error>,
) -> Result<Vec<Item<T>>, Error> {
    if batch.is_empty() {
        return Err(Error::InvalidArgument(
            "batch_input is empty: give at least one item".into(),
        ));
    }
    let with_context = batch
        .iter()
        .filter(|f| {
            f.string("context")
                .ok()
                .flatten()
                .is_some_and(|c| !c.is_empty())
        })
        .count();
    if with_context != 0 && with_context != batch.len() {
        return Err(Error::InvalidArgument(
            "context should be set either in all the request blocks or in none".into(),
        ));
    }
    batch
        .iter()
        .enumerate()
        .map(|(i, fields)| {
            let at = |e: Error| match e {
                Error::InvalidArgument(m) => {
                    Error::InvalidArgument(format!("batch_input[{i}]: {m}"))
                }
                other => other,
            };
            let reference = fields
                .string("reference")
                .map_err(at)?
                .unwrap_or("")
                .to_string();
            let value = input(fields).map_err(at)?;
            let context = fields
                .string("context")
                .map_err(at)?
                .map(|c| decode("context", c).map_err(|e| e.to_string()))
                .transpose()
                .map(Option::unwrap_or_default);
            let input = value.and_then(|v| context.map(|c| (v, c)));
            Ok(Item { reference, input })
        })
        .collect()
}

/// Each item's answer, in order: the engine's for the items it was given,
/// else the item's own error.
fn merge<T, R>(
    items: &[Item<T>],
    results: Vec<Result<R, String>>,
    ok: impl Fn(R) -> Value,
    error: impl Fn(String) -> Value,
) -> (Vec<Value>, usize) {
    let mut results = results.into_iter();
    let mut failed = 0;
    let answers = items
        .iter()
        .map(|item| {
            let result = match &item.input {
                Ok(_) => results
                    .next()
                    .unwrap_or_else(|| Err("the item was not processed".into())),
                Err(e) => Err(e.clone()),
            };
            let mut answer = match result {
                Ok(value) => ok(value),
                Err(e) => {
                    failed += 1;
                    error(e)
                }
            };
            answer["reference"] = json!(item.reference);
            answer
        })
        .collect();
    (answers, failed)
}

/// A batch's answer: 200 when every item succeeded, else 400, or the
/// caller's `partial_failure_response_code` when some succeeded.
fn batch_reply(fields: &Fields, answers: Vec<Value>, failed: usize) -> Outcome {
    let total = answers.len();
    let data = json!({ "batch_results": answers });
    if failed == 0 {
        return Ok(Reply::data(data));
    }
    let partial = fields
        .number("partial_failure_response_code")
        .ok()
        .flatten()
        .filter(|_| failed < total)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (100..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok());
    Ok(Reply::data_with_status(
        partial.unwrap_or(StatusCode::BAD_REQUEST),
        data,
    ))
}

/// The inputs of the items the engine gets: those read without error.
fn valid<T: Clone>(items: &[Item<T>]) -> Vec<(T, Vec<u8>)> {
    items
        .iter()
        .filter_map(|item| item.input.as_ref().ok().cloned())
        .collect()
}

/// The response line's count of failed items.
fn failed_items((_, failed): &(Vec<Value>, usize)) -> Vec<(&'static str, Field)> {
    vec![("failed_items", Field::Plain((*failed).into()))]
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    fn batch(items: Value) -> Vec<Fields> {
        let mut body = Map::new();
        body.insert("batch_input".into(), items);
        Fields::new(body).batch().unwrap()
    }

    fn text(f: &Fields) -> Result<Result<String, String>, Error> {
        Ok(Ok(f.string("ciphertext")?.unwrap_or("").to_string()))
    }

    #[test]
    fn items_keep_their_place_and_a_bad_one_fails_alone() {
        let read = items(
            batch(json!([
                {"ciphertext": "a", "context": "Y3R4", "reference": "first"},
                {"ciphertext": "b", "context": "not base64!"},
                {"ciphertext": "c", "context": "Y3R4"},
            ])),
            text,
        )
        .unwrap();
        assert_eq!(valid(&read).len(), 2);
        let engine = vec![Ok("A".to_string()), Err("no".to_string())];
        let (answers, failed) = merge(
            &read,
            engine,
            |r| json!({ "r": r }),
            |e| json!({ "error": e }),
        );
        assert_eq!(failed, 2);
        assert_eq!(answers[0], json!({"r": "A", "reference": "first"}));
        assert!(
            answers[1]["error"]
                .as_str()
                .unwrap()
                .contains("not valid base64")
        );
        assert_eq!(answers[2], json!({"error": "no", "reference": ""}));
        let fields = Fields::new(Map::new());
        assert_eq!(batch_reply(&fields, answers, failed).unwrap().status(), 400);
    }

    #[test]
    fn contexts_in_some_items_only_and_empty_batches_are_refused() {
        let mixed = batch(json!([{"ciphertext": "a", "context": "Y3R4"}, {"ciphertext": "b"}]));
        assert!(items(mixed, text).is_err());
        assert!(items(Vec::new(), text).is_err());
        let wrong = batch(json!([{"ciphertext": "a", "reference": 5}]));
        let e = items(wrong, text).err().unwrap();
        assert!(e.to_string().contains("batch_input[0]"), "{e}");
    }

    #[test]
    fn a_partial_failure_code_applies_when_some_items_succeeded() {
        let mut body = Map::new();
        body.insert("partial_failure_response_code".into(), json!(207));
        let fields = Fields::new(body);
        let some = vec![json!({}), json!({"error": "x"})];
        assert_eq!(batch_reply(&fields, some, 1).unwrap().status(), 207);
        let none = vec![json!({"error": "x"})];
        assert_eq!(batch_reply(&fields, none, 1).unwrap().status(), 400);
    }
}

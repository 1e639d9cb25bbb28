//! Handing answers back to the appenders' tasks.
//!
//! Completing a oneshot from the writer thread wakes its task from outside the runtime:
//! tokio pushes it onto the shared inject queue and, when its workers are parked, wakes
//! one with a futex. A group commit answers 64 appends at once, and on a two-core machine
//! those 64 remote wake-ups interleave with the workers they wake: each woken worker runs
//! one task, finds the queue empty again and parks, so the writer and the workers take
//! turns on one core (traced with `perf sched`: two or three context switches per answered
//! append). So an answer carries the runtime its append came from, and a batch of answers
//! is delivered by one task spawned there: one remote wake-up, then 64 local ones that
//! only push onto the worker's own run queue.

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::append::AppendResult;

/// One append's answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub reply: oneshot::Sender<AppendResult>,
    pub result: AppendResult,
    /// The runtime the append was made on, if any.
    pub runtime: Option<Handle>,
}

/// Sends its answers when dropped, wherever that happens: in the spawned task, or right
/// away if the runtime was shut down and dropped the task unpolled. Answers never get lost
/// with a runtime, even those of appends made on another one.
struct Delivery(Vec<Answer>);

impl Drop for Delivery {
    fn drop(&mut self) {
        for answer in self.0.drain(..) {
            // A closed receiver is an append whose caller stopped waiting.
            let _ = answer.reply.send(answer.result);
        }
    }
}

/// Sends `answers`: from a task on the runtime of one of them when there are several,
/// directly otherwise.
pub(crate) fn deliver(answers: Vec<Answer>) {
    // A lone answer is one wake-up either way; a spawn would only add a task.
    let runtime = match answers.as_slice() {
        [_, _, ..] => answers.iter().find_map(|a| a.runtime.clone()),
        _ => None,
    };
    let delivery = Delivery(answers);
    match runtime {
        Some(runtime) => {
            runtime.spawn(async move { drop(delivery) });
        }
        None => drop(delivery),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::append::AppendStatus;

    fn answer(runtime: Option<Handle>) -> (Answer, oneshot::Receiver<AppendResult>) {
        let (reply, receiver) = oneshot::channel();
        let answer = Answer {
            reply,
            result: AppendResult::refused(AppendStatus::PutOk),
            runtime,
        };
        (answer, receiver)
    }

    #[test]
    fn answers_arrive_through_a_live_runtime_and_without_one() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let (first, first_rx) = answer(Some(runtime.handle().clone()));
        let (second, second_rx) = answer(None);
        deliver(vec![first, second]);
        let (lone, lone_rx) = answer(None);
        deliver(vec![lone]);
        runtime.block_on(async {
            for rx in [first_rx, second_rx, lone_rx] {
                assert_eq!(rx.await.unwrap().status, AppendStatus::PutOk);
            }
        });
    }

    #[test]
    fn answers_survive_a_runtime_that_shut_down() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        drop(runtime);
        let (first, mut first_rx) = answer(Some(handle.clone()));
        let (second, mut second_rx) = answer(Some(handle));
        deliver(vec![first, second]);
        assert_eq!(first_rx.try_recv().unwrap().status, AppendStatus::PutOk);
        assert_eq!(second_rx.try_recv().unwrap().status, AppendStatus::PutOk);
    }
}

"""Evaluation: ranking metrics over every test user, pointwise metrics, baselines and peers."""

from fmrec.evaluation.ranking import K, RankingTask, ranking_metrics_at_k, ranking_task

__all__ = ["K", "RankingTask", "ranking_metrics_at_k", "ranking_task"]

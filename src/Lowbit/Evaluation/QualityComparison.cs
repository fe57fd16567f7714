using Lowbit.Models;

namespace Lowbit.Evaluation;

/// <summary>How a quantized model's predictions differ from the reference model's on the same windows.</summary>
public sealed record QualityResult(
    PerplexityResult Candidate,
    PerplexityResult Reference,
    double MeanKlDivergence,
    double KlDivergenceError,
    double SameTopTokenFraction);

/// <summary>
/// Perplexity of a candidate (quantized) model beside its reference, with the KL divergence of the
/// candidate's next-token distribution from the reference's, KL(P_ref ‖ P_cand), averaged over the
/// scored positions, and how often both pick the same top token: what llama.cpp's
/// <c>llama-perplexity --kl-divergence</c> reports. Both models run the same windows in lockstep, so no
/// logits are stored; llama.cpp stores the reference's log-probabilities 16-bit quantized and skips
/// probabilities below e^−16, while this sums every token in float64 (a difference far below the ±).
/// </summary>
public static class QualityComparison
{
    public static QualityResult Evaluate(LanguageModel reference, LanguageModel candidate, IReadOnlyList<int> tokens,
        int contextLength, IProgress<int>? chunksDone = null, CancellationToken cancellationToken = default, int? maxChunks = null)
    {
        if (reference.Config.VocabSize != candidate.Config.VocabSize)
            throw new ArgumentException($"The models' vocabularies differ ({reference.Config.VocabSize} and {candidate.Config.VocabSize}).", nameof(candidate));
        var referenceNll = new MeanAccumulator();
        var candidateNll = new MeanAccumulator();
        var kld = new MeanAccumulator();
        int sameTop = 0;
        int chunks = Perplexity.ScoreWindows([reference, candidate], tokens, contextLength, (states, row, target) =>
        {
            var p = states[0].LogitsRow(row);
            var q = states[1].LogitsRow(row);
            double lseP = Perplexity.LogSumExp(p), lseQ = Perplexity.LogSumExp(q);
            referenceNll.Add(lseP - p[target]);
            candidateNll.Add(lseQ - q[target]);
            double divergence = 0;
            for (int j = 0; j < p.Length; j++)
            {
                double logP = p[j] - lseP;
                divergence += Math.Exp(logP) * (logP - (q[j] - lseQ));
            }
            kld.Add(divergence);
            if (Generation.Sampler.ArgMax(p) == Generation.Sampler.ArgMax(q))
                sameTop++;
        }, chunksDone, cancellationToken, maxChunks);
        return new QualityResult(candidateNll.ToPerplexity(chunks), referenceNll.ToPerplexity(chunks), kld.Mean, kld.StandardError,
            sameTop / (double)kld.Count);
    }
}

using Lowbit.Generation;
using Lowbit.Models;

namespace Lowbit.Evaluation;

/// <summary>Perplexity with its standard error, as llama.cpp's llama-perplexity prints it.</summary>
public sealed record PerplexityResult(double Perplexity, double StandardError, int Chunks, int ScoredTokens, double MeanNegativeLogLikelihood);

/// <summary>
/// Perplexity computed the way llama.cpp's <c>llama-perplexity</c> does, so the two can be put side by
/// side: the text is tokenized once (with BOS), cut into ⌊tokens/ctx⌋ non-overlapping windows of ctx
/// tokens (the remainder is dropped), the first token of each window replaced by BOS, and only the
/// second half of each window scored: logits at positions ctx/2 .. ctx−2 predict the next token.
/// PPL = exp(mean NLL); its error is PPL·sqrt((E[NLL²] − E[NLL]²)/(N − 1)).
/// </summary>
public static class Perplexity
{
    public static PerplexityResult Evaluate(LanguageModel model, IReadOnlyList<int> tokens, int contextLength,
        IProgress<int>? chunksDone = null, CancellationToken cancellationToken = default)
    {
        int chunks = ChunkCount(tokens.Count, contextLength);
        if (chunks == 0)
            throw new ArgumentException($"The text has {tokens.Count} tokens; perplexity at context {contextLength} needs at least {2 * contextLength}.", nameof(tokens));
        if (contextLength > model.Transformer.MaxSequenceLength)
            throw new ArgumentException($"Context {contextLength} exceeds the model's {model.Transformer.MaxSequenceLength} positions.", nameof(contextLength));

        int batch = Math.Min(64, contextLength);
        using var state = new DecodeState(model.Config, contextLength, batch, model.Backend);
        int first = contextLength / 2;
        int bos = model.Tokenizer.BosId ?? tokens[0];
        var window = new int[contextLength];
        double nll = 0, nll2 = 0;
        int count = 0;
        for (int c = 0; c < chunks; c++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            for (int i = 0; i < contextLength; i++)
                window[i] = tokens[c * contextLength + i];
            window[0] = bos;
            for (int start = 0; start < contextLength; start += batch)
            {
                int m = Math.Min(batch, contextLength - start);
                // Logits only where they are scored: positions first .. ctx-2 of this chunk.
                int lastScored = Math.Min(start + m - 1, contextLength - 2);
                int firstScored = Math.Max(start, first);
                int rows = lastScored >= firstScored ? start + m - firstScored : 1;
                model.Transformer.Forward(window.AsSpan(start, m), start, state, rows);
                for (int pos = firstScored; pos <= lastScored; pos++)
                {
                    var logits = state.LogitsRow(pos - (start + m - rows));
                    double loss = -LogSoftmaxAt(logits, window[pos + 1]);
                    nll += loss;
                    nll2 += loss * loss;
                    count++;
                }
            }
            chunksDone?.Report(c + 1);
        }
        double mean = nll / count;
        double variance = nll2 / count - mean * mean;
        double ppl = Math.Exp(mean);
        double error = variance > 0 && count > 1 ? Math.Sqrt(variance / (count - 1)) * ppl : 0;
        return new PerplexityResult(ppl, error, chunks, count, mean);
    }

    /// <summary>Windows llama-perplexity makes from <paramref name="tokenCount"/> tokens; it needs two
    /// windows' worth of text.</summary>
    public static int ChunkCount(int tokenCount, int contextLength) =>
        tokenCount < 2 * contextLength ? 0 : tokenCount / contextLength;

    /// <summary>log softmax(logits)[target] in float64.</summary>
    public static double LogSoftmaxAt(ReadOnlySpan<float> logits, int target)
    {
        float max = float.NegativeInfinity;
        foreach (float v in logits)
            max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in logits)
            sum += Math.Exp(v - max);
        return logits[target] - max - Math.Log(sum);
    }
}

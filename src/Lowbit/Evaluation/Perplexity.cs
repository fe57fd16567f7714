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
    /// <param name="maxChunks">Score at most this many windows (llama-perplexity's --chunks); null: all.</param>
    public static PerplexityResult Evaluate(LanguageModel model, IReadOnlyList<int> tokens, int contextLength,
        IProgress<int>? chunksDone = null, CancellationToken cancellationToken = default, int? maxChunks = null)
    {
        var nll = new MeanAccumulator();
        int chunks = ScoreWindows([model], tokens, contextLength,
            (states, row, target) => nll.Add(-LogSoftmaxAt(states[0].LogitsRow(row), target)), chunksDone, cancellationToken, maxChunks);
        return nll.ToPerplexity(chunks);
    }

    /// <summary>The tokens of a text file as llama-perplexity reads it: the whole file as one string, one
    /// trailing newline removed, BOS in front when the tokenizer has one.</summary>
    public static int[] TokenizeFile(LanguageModel model, string path)
    {
        string content = File.ReadAllText(path);
        if (content.EndsWith('\n'))
            content = content[..^1];
        return model.Tokenizer.Encode(content, addBos: model.Tokenizer.BosId is not null);
    }

    /// <summary>Windows llama-perplexity makes from <paramref name="tokenCount"/> tokens; it needs two
    /// windows' worth of text.</summary>
    public static int ChunkCount(int tokenCount, int contextLength) =>
        tokenCount < 2 * contextLength ? 0 : tokenCount / contextLength;

    /// <summary>log softmax(logits)[target] in float64.</summary>
    public static double LogSoftmaxAt(ReadOnlySpan<float> logits, int target) => logits[target] - LogSumExp(logits);

    /// <summary>log Σ exp(logits) in float64, shifted by the maximum.</summary>
    public static double LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = float.NegativeInfinity;
        foreach (float v in logits)
            max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in logits)
            sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }

    /// <summary>Called for each scored position: model i's logits there are states[i].LogitsRow(
    /// <paramref name="row"/>); <paramref name="target"/> is the token they predict.</summary>
    internal delegate void ScoredPosition(DecodeState[] states, int row, int target);

    /// <summary>
    /// Runs every model over llama-perplexity's windows in lockstep and calls <paramref name="visit"/> at each
    /// scored position; returns the number of windows.
    /// </summary>
    internal static int ScoreWindows(IReadOnlyList<LanguageModel> models, IReadOnlyList<int> tokens, int contextLength,
        ScoredPosition visit, IProgress<int>? chunksDone, CancellationToken cancellationToken, int? maxChunks)
    {
        int chunks = ChunkCount(tokens.Count, contextLength);
        if (chunks == 0)
            throw new ArgumentException($"The text has {tokens.Count} tokens; perplexity at context {contextLength} needs at least {2 * contextLength}.", nameof(tokens));
        if (maxChunks is < 1)
            throw new ArgumentOutOfRangeException(nameof(maxChunks), maxChunks, "at least one window");
        chunks = Math.Min(chunks, maxChunks ?? int.MaxValue);
        foreach (var model in models)
        {
            if (contextLength > model.Transformer.MaxSequenceLength)
                throw new ArgumentException($"Context {contextLength} exceeds the model's {model.Transformer.MaxSequenceLength} positions.", nameof(contextLength));
        }

        int batch = Math.Min(64, contextLength);
        var states = models.Select(m => m.Transformer.NewState(batch, contextLength)).ToArray();
        try
        {
            int first = contextLength / 2;
            int bos = models[0].Tokenizer.BosId ?? tokens[0];
            var window = new int[contextLength];
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
                    for (int i = 0; i < models.Count; i++)
                        models[i].Transformer.Forward(window.AsSpan(start, m), start, states[i], rows);
                    for (int pos = firstScored; pos <= lastScored; pos++)
                        visit(states, pos - firstScored, window[pos + 1]);
                }
                chunksDone?.Report(c + 1);
            }
            return chunks;
        }
        finally
        {
            foreach (var s in states)
                s.Dispose();
        }
    }
}

/// <summary>Running sums of a per-token quantity for its mean and the standard error of the mean.</summary>
internal sealed class MeanAccumulator
{
    private double _sum, _sumSquares;

    public int Count { get; private set; }

    public void Add(double value)
    {
        _sum += value;
        _sumSquares += value * value;
        Count++;
    }

    public double Mean => _sum / Count;

    /// <summary>sqrt(var/(n − 1)) with the population variance, as llama.cpp computes it.</summary>
    public double StandardError
    {
        get
        {
            double variance = _sumSquares / Count - Mean * Mean;
            return variance > 0 && Count > 1 ? Math.Sqrt(variance / (Count - 1)) : 0;
        }
    }

    /// <summary>The accumulated NLLs as a perplexity: exp(mean) and its delta-method error.</summary>
    public PerplexityResult ToPerplexity(int chunks)
    {
        double ppl = Math.Exp(Mean);
        return new PerplexityResult(ppl, StandardError * ppl, chunks, Count, Mean);
    }
}

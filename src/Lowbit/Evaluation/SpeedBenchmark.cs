using System.Diagnostics;
using Lowbit.Generation;
using Lowbit.Models;

namespace Lowbit.Evaluation;

/// <summary>Prefill and decode speed in tokens per second.</summary>
public readonly record struct SpeedResult(double PrefillTokensPerSecond, double DecodeTokensPerSecond);

/// <summary>
/// llama-bench's pp and tg tests: prefill of <c>prompt</c> random tokens from position 0 in chunks of the
/// state's batch, and decode (greedy unless told how to sample) of <c>gen</c> tokens from position 0 as the Generator runs it (recorded
/// steps where the backend records them, the argmax on the backend); the best of reps, after a warm-up
/// (JIT, page faults of the mapped weights, kernel compilation).
/// </summary>
public static class SpeedBenchmark
{
    public static SpeedResult Measure(LanguageModel model, int prompt, int gen, int reps, SamplingOptions? sampling = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var state = model.Transformer.NewState(64);
        return new SpeedResult(Prefill(model.Transformer, state, prompt, reps), Decode(model.Transformer, state, gen, reps, sampling: sampling));
    }

    /// <summary>Prefill tok/s of <paramref name="prompt"/> tokens in forward passes of up to state.MaxBatch.</summary>
    public static double Prefill(Transformer transformer, DecodeState state, int prompt, int reps)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentOutOfRangeException.ThrowIfLessThan(prompt, 1);
        int chunk = state.MaxBatch;
        var random = new Random(1);
        int[] tokens = [.. Enumerable.Range(0, prompt).Select(_ => random.Next(transformer.Config.VocabSize))];
        transformer.Forward(tokens.AsSpan(0, Math.Min(chunk, prompt)), 0, state);
        double best = 0;
        for (int r = 0; r < Math.Max(1, reps); r++)
        {
            var clock = Stopwatch.StartNew();
            for (int start = 0; start < prompt; start += chunk)
                transformer.Forward(tokens.AsSpan(start, Math.Min(chunk, prompt - start)), start, state);
            transformer.Backend.ArgMax(state.Logits.Slice(0, 1)); // waits for a device to finish
            best = Math.Max(best, prompt / clock.Elapsed.TotalSeconds);
        }
        return best;
    }

    /// <summary>Decode tok/s of <paramref name="gen"/> tokens from position <paramref name="from"/> (the cache rows
    /// before it as the state holds them: attention's work depends on the position, not on the values), each token
    /// picked as <paramref name="sampling"/> says on the backend (default greedy), as <see cref="Generator"/> does.</summary>
    public static double Decode(Transformer transformer, DecodeState state, int gen, int reps, int from = 0, SamplingOptions? sampling = null)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentOutOfRangeException.ThrowIfLessThan(gen, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(from);
        var backend = transformer.Backend;
        var sampler = new Sampler(transformer.Config.VocabSize, sampling ?? SamplingOptions.Greedy);
        transformer.Decode(1, from, state); // warm-up, and where the backend records the step
        double best = 0;
        for (int r = 0; r < Math.Max(1, reps); r++)
        {
            int token = 1;
            var clock = Stopwatch.StartNew();
            for (int pos = from; pos < from + gen; pos++)
            {
                transformer.Decode(token, pos, state);
                token = sampler.Sample(backend, state.Logits.Slice(0, 1));
            }
            best = Math.Max(best, gen / clock.Elapsed.TotalSeconds);
        }
        return best;
    }
}

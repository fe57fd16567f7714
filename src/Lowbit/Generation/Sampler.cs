using Lowbit.Backends;
using Lowbit.Tensors;

namespace Lowbit.Generation;

/// <summary>
/// Picks the next token from a row of logits (llama2.c's sampler with top-k added). Buffers are
/// allocated once for the vocabulary, so sampling in the decode loop allocates nothing.
/// </summary>
public sealed class Sampler
{
    private readonly SamplingOptions _options;
    private readonly float[] _probabilities;
    private readonly int[] _indices;
    private readonly float[] _sortKeys;
    private ulong _state;

    public Sampler(int vocabSize, SamplingOptions options)
    {
        _options = options;
        _probabilities = new float[vocabSize];
        _indices = new int[vocabSize];
        _sortKeys = new float[vocabSize];
        _state = options.Seed ?? (ulong)DateTime.UtcNow.Ticks;
        if (_state == 0)
            _state = 0x9E3779B97F4A7C15UL;
    }

    public int Sample(ReadOnlySpan<float> logits)
    {
        if (_options.Temperature == 0f)
            return ArgMax(logits);

        var probs = _probabilities.AsSpan(0, logits.Length);
        float max = float.NegativeInfinity;
        foreach (float v in logits)
            max = Math.Max(max, v);
        double sum = 0;
        float invT = 1f / _options.Temperature;
        for (int i = 0; i < probs.Length; i++)
        {
            probs[i] = MathF.Exp((logits[i] - max) * invT);
            sum += probs[i];
        }
        for (int i = 0; i < probs.Length; i++)
            probs[i] = (float)(probs[i] / sum);

        int n = probs.Length;
        if (_options.TopK > 0 || _options.TopP < 1f)
            n = Truncate(probs);
        else
        {
            for (int i = 0; i < n; i++)
                _indices[i] = i;
        }

        // Draw from the n kept candidates, renormalised.
        double total = 0;
        for (int i = 0; i < n; i++)
            total += probs[_indices[i]];
        double r = NextDouble() * total, cumulative = 0;
        for (int i = 0; i < n; i++)
        {
            cumulative += probs[_indices[i]];
            if (r < cumulative)
                return _indices[i];
        }
        return _indices[n - 1];
    }

    /// <summary>The next token from a logits row in <paramref name="backend"/>'s memory, chosen there
    /// (<see cref="IBackend.ArgMax"/>, or <see cref="IBackend.Sample"/> with this sampler's next random number):
    /// one int comes back, not the row.</summary>
    public int Sample(IBackend backend, TensorView logits)
    {
        ArgumentNullException.ThrowIfNull(backend);
        return _options.Temperature == 0f
            ? backend.ArgMax(logits)
            : backend.Sample(logits, _options.Temperature, _options.TopK, _options.TopP, NextDouble());
    }

    /// <summary>Greedy choice; the lowest index wins a tie, as torch.argmax does.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
                best = i;
        }
        return best;
    }

    /// <summary>Sorts candidate indices by probability, keeps the top k and then the smallest prefix
    /// whose mass reaches top-p; returns how many are kept in _indices.</summary>
    private int Truncate(Span<float> probs)
    {
        int n = probs.Length;
        int count = 0;
        // Tokens below (1 - p) / (n - 1) cannot be in the top-p set (llama2.c's pre-filter), which
        // keeps the sort short on large vocabularies.
        float cutoff = _options.TopP < 1f && _options.TopK == 0 ? (1f - _options.TopP) / (n - 1) : 0f;
        for (int i = 0; i < n; i++)
        {
            if (probs[i] >= cutoff)
            {
                _sortKeys[count] = -probs[i];
                _indices[count++] = i;
            }
        }
        // Keys and items sorted together with the default float order: no comparer delegate, no allocation.
        _sortKeys.AsSpan(0, count).Sort(_indices.AsSpan(0, count));
        if (_options.TopK > 0)
            count = Math.Min(count, _options.TopK);
        if (_options.TopP < 1f)
        {
            double cumulative = 0;
            for (int i = 0; i < count; i++)
            {
                cumulative += probs[_indices[i]];
                if (cumulative >= _options.TopP)
                {
                    count = i + 1;
                    break;
                }
            }
        }
        return count;
    }

    /// <summary>xorshift64* in [0, 1) with 53 random bits.</summary>
    private double NextDouble()
    {
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        return ((_state * 0x2545F4914F6CDD1DUL) >> 11) * (1.0 / (1UL << 53));
    }
}

namespace Lowbit.Generation;

/// <summary>
/// How the next token is chosen. Temperature 0 is greedy (argmax). Otherwise logits are divided by
/// the temperature, softmaxed, cut to the <see cref="TopK"/> most likely tokens (0: no cut), then to
/// the smallest set whose probability reaches <see cref="TopP"/> (1: no cut), and sampled.
/// </summary>
public sealed record SamplingOptions
{
    public SamplingOptions(float temperature = 0f, int topK = 0, float topP = 1f, ulong? seed = null)
    {
        Temperature = temperature >= 0 && float.IsFinite(temperature) ? temperature
            : throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be 0 (greedy) or positive");
        TopK = topK >= 0 ? topK : throw new ArgumentOutOfRangeException(nameof(topK), topK, "top-k must be 0 (off) or positive");
        TopP = topP > 0 && topP <= 1 ? topP : throw new ArgumentOutOfRangeException(nameof(topP), topP, "top-p must be in (0, 1]");
        Seed = seed;
    }

    public float Temperature { get; }
    public int TopK { get; }
    public float TopP { get; }

    /// <summary>Seed of the sampler's random numbers; null draws one from the clock.</summary>
    public ulong? Seed { get; }

    public static SamplingOptions Greedy { get; } = new();
}

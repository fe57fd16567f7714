using System.Text.Json;

namespace Lowbit.Models.Tokenization;

/// <summary>
/// What Lowbit reads from a Hugging Face <c>tokenizer_config.json</c>: add_bos_token, and bos_token /
/// eos_token, each either a string or an AddedToken object <c>{"content": ...}</c> (null when absent).
/// </summary>
internal sealed record TokenizerConfig(bool? AddBosToken, string? BosToken, string? EosToken)
{
    public const string FileName = "tokenizer_config.json";

    public static TokenizerConfig Empty { get; } = new(null, null, null);

    /// <summary>Reads <c>tokenizer_config.json</c> in <paramref name="modelDir"/>, or returns <see cref="Empty"/>
    /// when there is none.</summary>
    public static TokenizerConfig Load(string modelDir)
    {
        string path = Path.Combine(modelDir, FileName);
        if (!File.Exists(path))
            return Empty;
        try
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(path));
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException("the top level is not a JSON object");
            bool? addBos = root.TryGetProperty("add_bos_token", out JsonElement a) && a.ValueKind is JsonValueKind.True or JsonValueKind.False
                ? a.GetBoolean()
                : null;
            return new TokenizerConfig(addBos, TokenText(root, "bos_token"), TokenText(root, "eos_token"));
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    private static string? TokenText(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out JsonElement token))
            return null;
        return token.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => token.GetString(),
            JsonValueKind.Object when token.TryGetProperty("content", out JsonElement c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => throw new InvalidDataException($"{name} is {token.ValueKind}; expected a string or an object with \"content\""),
        };
    }
}

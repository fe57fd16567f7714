using System.Text.Json;

namespace Lowbit.Models.HuggingFace;

/// <summary>Typed access to one JSON config file's fields; every error names the file and the field.
/// A field given as JSON null counts as absent, as transformers treats it.</summary>
internal sealed class ConfigJson : IDisposable
{
    private readonly JsonDocument _doc;

    private ConfigJson(string path, JsonDocument doc)
    {
        Path = path;
        _doc = doc;
    }

    public string Path { get; }

    public JsonElement Root => _doc.RootElement;

    public static ConfigJson Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} does not exist.", path);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e);
        }
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw new InvalidDataException($"{path}: expected a JSON object, found {doc.RootElement.ValueKind}.");
        }
        return new ConfigJson(path, doc);
    }

    public Exception Error(string field, string problem) => new InvalidDataException($"{Path}: {field} {problem}");

    public JsonElement? Find(JsonElement obj, string field) =>
        obj.TryGetProperty(field, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public int RequiredPositiveInt(string field) =>
        OptionalPositiveInt(Root, field) ?? throw Error(field, "is missing.");

    public int? OptionalPositiveInt(JsonElement obj, string field, string? label = null)
    {
        label ??= field;
        if (Find(obj, field) is not { } v)
            return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int value))
            throw Error(label, $"is {v.GetRawText()}; expected an integer.");
        return value > 0 ? value : throw Error(label, $"is {value}; it must be positive.");
    }

    public int? OptionalInt(JsonElement obj, string field)
    {
        if (Find(obj, field) is not { } v)
            return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int value) ? value
            : throw Error(field, $"is {v.GetRawText()}; expected an integer.");
    }

    public double? OptionalPositiveDouble(JsonElement obj, string field, string? label = null)
    {
        label ??= field;
        if (Find(obj, field) is not { } v)
            return null;
        if (v.ValueKind != JsonValueKind.Number)
            throw Error(label, $"is {v.GetRawText()}; expected a number.");
        double value = v.GetDouble();
        return value > 0 && double.IsFinite(value) ? value : throw Error(label, $"is {value}; it must be positive.");
    }

    public bool? OptionalBool(string field)
    {
        if (Find(Root, field) is not { } v)
            return null;
        return v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean()
            : throw Error(field, $"is {v.GetRawText()}; expected true or false.");
    }

    public string? OptionalString(JsonElement obj, string field)
    {
        if (Find(obj, field) is not { } v)
            return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString()
            : throw Error(field, $"is {v.GetRawText()}; expected a string.");
    }

    /// <summary>An int, or a list of ints (eos_token_id may be either); null when absent.</summary>
    public IReadOnlyList<int>? OptionalIntList(string field)
    {
        if (Find(Root, field) is not { } v)
            return null;
        if (v.ValueKind == JsonValueKind.Number)
            return [OptionalInt(Root, field)!.Value];
        if (v.ValueKind != JsonValueKind.Array)
            throw Error(field, $"is {v.GetRawText()}; expected an integer or a list of integers.");
        var list = new List<int>();
        foreach (var item in v.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int id))
                throw Error(field, $"holds {item.GetRawText()}; expected integers.");
            list.Add(id);
        }
        return list;
    }

    public void Dispose() => _doc.Dispose();
}

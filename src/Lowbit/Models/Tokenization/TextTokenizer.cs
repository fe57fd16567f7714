using System.Buffers;
using System.Text;

namespace Lowbit.Models.Tokenization;

/// <summary>
/// The tokenizer of a model directory: SentencePiece BPE from <c>tokenizer.model</c> (Llama 2, Mistral, TinyLlama)
/// or Hugging Face byte-level BPE from <c>tokenizer.json</c> (Llama 3, Qwen2, SmolLM). Encoding runs in
/// Lowbit's <see cref="SentencePieceBpeEncoder"/> (SentencePiece) or <see cref="ByteLevelBpeEncoder"/> over
/// Microsoft.ML.Tokenizers' BpeTokenizer (byte-level BPE); decoding is Lowbit's own table of token bytes, shared with <see cref="TokenStreamDecoder"/>.
/// </summary>
public sealed class TextTokenizer
{
    public const string SentencePieceFileName = "tokenizer.model";
    public const string HuggingFaceFileName = HuggingFaceBpeLoader.FileName;

    // Exactly one of the two encodes.
    private readonly SentencePieceBpeEncoder? _sentencePiece;
    private readonly ByteLevelBpeEncoder? _byteLevel;

    private TextTokenizer(SentencePieceBpeEncoder? sentencePiece, ByteLevelBpeEncoder? byteLevel, TokenDecodeTable table, int? bosId, IReadOnlyList<int> eosIds, bool addBosToken, string sourcePath)
    {
        _sentencePiece = sentencePiece;
        _byteLevel = byteLevel;
        DecodeTable = table;
        BosId = bosId;
        EosIds = eosIds;
        AddBosToken = addBosToken;
        SourcePath = sourcePath;
    }

    /// <summary>The beginning-of-sequence token, or null when the tokenizer has none (Qwen2).</summary>
    public int? BosId { get; }

    /// <summary>Tokens that end generation: tokenizer_config.json's eos_token, else the model file's.</summary>
    public IReadOnlyList<int> EosIds { get; }

    /// <summary>Whether prompts start with <see cref="BosId"/>: tokenizer_config.json's add_bos_token, else true for
    /// SentencePiece models and, for tokenizer.json, whether its post_processor template starts with a special token.</summary>
    public bool AddBosToken { get; }

    /// <summary>Number of token ids the tokenizer knows (vocabulary plus added tokens).</summary>
    public int VocabSize => DecodeTable.Count;

    /// <summary>The file the tokenizer was read from.</summary>
    public string SourcePath { get; }

    internal TokenDecodeTable DecodeTable { get; }

    /// <summary>Loads <c>tokenizer.model</c> from <paramref name="modelDir"/> if present, else <c>tokenizer.json</c>,
    /// plus <c>tokenizer_config.json</c> when present.</summary>
    /// <exception cref="FileNotFoundException">The directory holds neither file.</exception>
    /// <exception cref="InvalidDataException">A file cannot be parsed; the message names it and the cause.</exception>
    /// <exception cref="NotSupportedException">tokenizer.json uses a feature Lowbit does not implement.</exception>
    public static TextTokenizer Load(string modelDir)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        string spPath = Path.Combine(modelDir, SentencePieceFileName);
        string hfPath = Path.Combine(modelDir, HuggingFaceFileName);
        if (File.Exists(spPath))
            return FromSentencePiece(File.ReadAllBytes(spPath), spPath, TokenizerConfig.Load(modelDir));
        if (File.Exists(hfPath))
            return FromHuggingFace(hfPath, TokenizerConfig.Load(modelDir));
        throw new FileNotFoundException(
            $"{modelDir}: no tokenizer found; looked for {SentencePieceFileName} (SentencePiece) and {HuggingFaceFileName} (Hugging Face)",
            spPath);
    }

    /// <summary>Loads a llama2.c tokenizer (run.c's tokenizer.bin format) holding <paramref name="vocabSize"/>
    /// pieces, through <see cref="Llama2cTokenizerConverter"/>.</summary>
    public static TextTokenizer LoadLlama2c(string binPath, int vocabSize) =>
        FromSentencePiece(Llama2cTokenizerConverter.ToSentencePieceModel(binPath, vocabSize), binPath, TokenizerConfig.Empty);

    /// <summary>Token ids of <paramref name="text"/>, preceded by <see cref="BosId"/> when <paramref name="addBos"/>.</summary>
    /// <exception cref="InvalidOperationException"><paramref name="addBos"/> is true but the tokenizer has no BOS token.</exception>
    public int[] Encode(string text, bool addBos)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (addBos && BosId is null)
            throw new InvalidOperationException($"{SourcePath}: this tokenizer has no BOS token; check AddBosToken before asking for one");
        var ids = new List<int>(text.Length / 3 + 2);
        if (addBos)
            ids.Add(BosId!.Value);
        if (_sentencePiece is not null)
            _sentencePiece.Encode(text, ids);
        else
            _byteLevel!.Encode(text, ids);
        return [.. ids];
    }

    /// <summary>The text of <paramref name="ids"/>, without special tokens. Bytes that do not form valid UTF-8
    /// become U+FFFD. For SentencePiece models the dummy-prefix space of the first piece is dropped.</summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new ArrayBufferWriter<byte>(ids.Length * 4 + 16);
        bool atStart = true;
        foreach (int id in ids)
            bytes.Write(DecodeTable.NextBytes(id, ref atStart));
        return Encoding.UTF8.GetString(bytes.WrittenSpan);
    }

    internal static TextTokenizer FromSentencePiece(byte[] modelBytes, string path, TokenizerConfig config)
    {
        SentencePieceModel model;
        try
        {
            model = SentencePieceModel.Parse(modelBytes);
            if (model.Pieces.Count == 0)
                throw new InvalidDataException("it holds no pieces (ModelProto field 1)");
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: not a readable SentencePiece model: {e.Message}", e);
        }
        if (model.ModelType != SentencePieceModel.ModelTypeBpe)
            throw new NotSupportedException($"{path}: SentencePiece model type {model.ModelType}; Lowbit reads BPE models (type 2) only");
        var encoder = new SentencePieceBpeEncoder(model, path);

        var ids = new Dictionary<string, int>(model.Pieces.Count, StringComparer.Ordinal);
        var bytes = new byte[model.Pieces.Count][];
        var kinds = new TokenKind[model.Pieces.Count];
        for (int id = 0; id < model.Pieces.Count; id++)
        {
            SentencePiece piece = model.Pieces[id];
            ids.TryAdd(piece.Piece, id);
            (bytes[id], kinds[id]) = piece.Type switch
            {
                SentencePieceType.Control or SentencePieceType.Unknown => ([], TokenKind.Special),
                SentencePieceType.Byte => ([TokenDecodeTable.ParseBytePiece(piece.Piece, id, path)], TokenKind.Byte),
                _ => (Encoding.UTF8.GetBytes(piece.Piece.Replace('\u2581', ' ')), TokenKind.Text),
            };
        }
        var table = new TokenDecodeTable(bytes, kinds, stripDummyPrefix: model.AddDummyPrefix);

        int? bos = Resolve(config.BosToken, "bos_token", ids, path) ?? ValidId(model.BosId, model.Pieces.Count);
        int? eos = Resolve(config.EosToken, "eos_token", ids, path) ?? ValidId(model.EosId, model.Pieces.Count);
        return new TextTokenizer(encoder, null, table, bos, eos is int eosId ? [eosId] : [], (config.AddBosToken ?? true) && bos is not null, path);
    }

    private static TextTokenizer FromHuggingFace(string path, TokenizerConfig config)
    {
        HuggingFaceBpe bpe;
        try
        {
            bpe = HuggingFaceBpeLoader.Load(path);
        }
        catch (Exception e) when (e is not (NotSupportedException or OutOfMemoryException))
        {
            throw new InvalidDataException($"{path}: not a readable tokenizer.json: {e.Message}", e);
        }
        int? bos = Resolve(config.BosToken ?? bpe.TemplateBosToken, "bos_token", bpe.TokenIds, path);
        int? eos = Resolve(config.EosToken, "eos_token", bpe.TokenIds, path);
        bool addBos = config.AddBosToken ?? (bpe.TemplateBosToken is not null);
        return new TextTokenizer(null, bpe.Encoder, bpe.Table, bos, eos is int eosId ? [eosId] : [], addBos && bos is not null, path);
    }

    private static int? Resolve(string? token, string what, IReadOnlyDictionary<string, int> ids, string tokenizerPath)
    {
        if (token is null)
            return null;
        return ids.TryGetValue(token, out int id)
            ? id
            : throw new InvalidDataException($"{TokenizerConfig.FileName}: {what} \"{token}\" is not a token of {tokenizerPath}");
    }

    private static int? ValidId(int id, int count) => id >= 0 && id < count ? id : null;
}
